"""Deployment artefacts built from this checkout.

- :mod:`~pistats.deploy.lambda_package`: the ingest's AWS Lambda zip and the SAM template
  (``deploy/template.yaml``) that deploys it with its HTTP API and Kinesis stream.
"""

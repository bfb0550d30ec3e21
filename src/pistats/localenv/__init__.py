"""The local environment: paths and the services a developer or a test run starts.

Everything here binds to 127.0.0.1 and keeps its data under the project-local
``.pistats/`` folder, so a checkout never touches system-wide state.
"""

"""Apache Storm 2.x compatibility for streamparse 5.0.1, and the ``storm`` command.

Why this exists (see docs/storm-toolchain.md):

* The official Storm binary distribution (``org.apache.storm:final-package:<v>:tar.gz``) is not
  on Maven Central. ``scripts/bootstrap`` assembles an equivalent STORM_HOME from the
  ``storm-server`` artifacts, and :mod:`storm_compat.launcher` is the ``storm`` command over it
  (version, local, jar, nimbus, supervisor, kill, list) running the real Storm classes.
* streamparse 5.0.1 was written for Storm 1.x. :mod:`storm_compat.sparse` is the ``sparse``
  command: streamparse's own CLI with three adaptations and nothing else:

  1. ``sparse run`` asked ``storm jar <jar> org.apache.storm.flux.Flux --local ...``; Storm 2's Flux
     ignores ``--local`` and submits to a remote Nimbus. Storm 2's local mode is
     ``storm local <jar> <main> <args>`` (``LocalCluster``), so the command is rewritten to that.
  2. Its version check parses ``lein deps :tree`` for ``storm-core``, which a Storm 2 project must
     not depend on (storm-core >= 2.5 pulls carbonite from Clojars). The check reads
     ``storm-client`` from the same tree instead.
  3. A relative ``virtualenv_root`` or ``log.path`` in config.json is resolved against the project
     directory, not under each worker's changing working directory.

This package is tooling around Storm; the ``pistats`` library never imports it.
"""

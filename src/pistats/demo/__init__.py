"""The main job: a recording through the real topology on a local Storm, then the report."""

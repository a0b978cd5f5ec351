"""The release pipeline's engine room on the build host (Buildbot)."""

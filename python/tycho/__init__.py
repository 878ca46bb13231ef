"""tycho: compile docker-compose systems into Kubernetes objects and run them.

A Rust core (``tycho._native``) under the module layout of tycho-api 1.17.3.
Importing tycho or any submodule touches no cluster, kubeconfig or network.
"""

from tycho._native import __version__

__all__ = ["__version__"]

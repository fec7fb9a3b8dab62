"""jradievo-ray: JRadiEvo evolutionary model merging for Japanese chest X-ray reports, on Ray."""

__version__ = "0.1.0"

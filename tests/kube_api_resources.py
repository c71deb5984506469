"""The resources the fake API (kube_api.py) serves: the ones the functions touch."""

from __future__ import annotations

# plural -> (group, version, kind, namespaced, subresources)
RESOURCES: dict[str, tuple[str, str, str, bool, tuple[str, ...]]] = {
    "pods": ("", "v1", "Pod", True, ()),
    "events": ("", "v1", "Event", True, ()),
    "persistentvolumeclaims": ("", "v1", "PersistentVolumeClaim", True, ("status",)),
    "nodes": ("", "v1", "Node", False, ("status", "proxy")),
    "storageclasses": ("storage.k8s.io", "v1", "StorageClass", False, ()),
    "deployments": ("apps", "v1", "Deployment", True, ("scale", "status")),
    "statefulsets": ("apps", "v1", "StatefulSet", True, ("scale", "status")),
    "daemonsets": ("apps", "v1", "DaemonSet", True, ("status",)),
    "jobs": ("batch", "v1", "Job", True, ("status",)),
    "cronjobs": ("batch", "v1", "CronJob", True, ("status",)),
    "horizontalpodautoscalers": ("autoscaling", "v2", "HorizontalPodAutoscaler", True, ("status",)),
    "certificates": ("cert-manager.io", "v1", "Certificate", True, ("status",)),
    "kustomizations": ("kustomize.toolkit.fluxcd.io", "v1", "Kustomization", True, ("status",)),
    "gitrepositories": ("source.toolkit.fluxcd.io", "v1", "GitRepository", True, ("status",)),
    "ocirepositories": ("source.toolkit.fluxcd.io", "v1", "OCIRepository", True, ("status",)),
    "buckets": ("source.toolkit.fluxcd.io", "v1", "Bucket", True, ("status",)),
    "helmrepositories": ("source.toolkit.fluxcd.io", "v1", "HelmRepository", True, ("status",)),
    "helmcharts": ("source.toolkit.fluxcd.io", "v1", "HelmChart", True, ("status",)),
    "helmreleases": ("helm.toolkit.fluxcd.io", "v2", "HelmRelease", True, ("status",)),
}

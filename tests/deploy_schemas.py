"""The structure that the custom resources in deploy/kubernetes must have, as JSON Schema.

kubernetes-validate knows only Kubernetes' own kinds. These are written from the operators' CRDs
and webhooks (Prometheus Operator, Knative Eventing and its RabbitMQ broker, KEDA), narrowed to
the fields deploy/kubernetes uses: a required field missing, a misspelt one (no additional
properties where the CRD has a fixed set) or a value of the wrong shape fails.
"""

from __future__ import annotations

from typing import Any

_NAME = {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", "maxLength": 63}
_DURATION = {"type": "string", "pattern": r"^([0-9]+(ms|s|m|h|d|w|y))+$"}  # Prometheus' own
_ISO_DURATION = {"type": "string", "pattern": r"^P(T?[0-9]+[YMWDHS])+$"}  # Knative's backoffDelay
_STRINGS = {"type": "object", "additionalProperties": {"type": "string"}}
_NAME_REF = {"type": "object", "required": ["name"], "properties": {"name": _NAME}, "additionalProperties": False}


def _resource(spec: dict[str, Any], metadata: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "metadata": {
                "type": "object",
                "required": ["name", "namespace"],
                "properties": {"name": _NAME, "namespace": _NAME, "labels": _STRINGS, "annotations": _STRINGS,
                               **(metadata or {})},
            },
            "spec": spec,
        },
    }


def _object(required: list[str], properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "required": required, "properties": properties, "additionalProperties": False}


_SERVICE_MONITOR = _object(["selector", "endpoints"], {
    "selector": _object(["matchLabels"], {"matchLabels": _STRINGS}),
    "endpoints": {"type": "array", "minItems": 1, "items": _object(["port"], {
        "port": _NAME, "path": {"type": "string", "pattern": "^/"}, "interval": _DURATION, "scrapeTimeout": _DURATION,
    })},
})

_ALERT_RULE = _object(["alert", "expr", "labels", "annotations"], {
    "alert": {"type": "string", "pattern": "^[A-Z][A-Za-z0-9]+$"},
    "expr": {"type": "string", "minLength": 1},
    "for": _DURATION,
    "labels": {"type": "object", "required": ["severity"],
               "properties": {"severity": {"enum": ["critical", "warning", "info"]}}},
    "annotations": {"type": "object", "required": ["summary", "description"], "additionalProperties": {"type": "string"}},
})
_PROMETHEUS_RULE = _object(["groups"], {
    "groups": {"type": "array", "minItems": 1, "items": _object(["name", "rules"], {
        "name": {"type": "string"}, "interval": _DURATION, "rules": {"type": "array", "minItems": 1, "items": _ALERT_RULE},
    })},
})

_REFERENCE = _object(["apiVersion", "kind", "name"], {
    "apiVersion": {"type": "string"}, "kind": {"type": "string"}, "name": _NAME, "namespace": _NAME,
})
_BROKER = _object(["config"], {
    "config": _object(["apiVersion", "kind", "name", "namespace"], {  # the RabbitMQ broker's webhook wants all four
        "apiVersion": {"const": "eventing.knative.dev/v1alpha1"},
        "kind": {"const": "RabbitmqBrokerConfig"},
        "name": _NAME,
        "namespace": _NAME,
    }),
})
_BROKER_CONFIG = _object(["rabbitmqClusterReference"], {
    "rabbitmqClusterReference": {"oneOf": [  # a RabbitmqCluster by name, or an external one's secret
        _object(["name"], {"name": _NAME, "namespace": _NAME}),
        _object(["connectionSecret"], {"connectionSecret": _NAME_REF}),
    ]},
    "queueType": {"enum": ["quorum", "classic"]},
    "vhost": {"type": "string"},
})
_TRIGGER = _object(["broker", "subscriber"], {
    "broker": _NAME,
    "filter": _object(["attributes"], {"attributes": {**_STRINGS, "minProperties": 1}}),
    "subscriber": {
        "type": "object",
        "anyOf": [{"required": ["ref"]}, {"required": ["uri"]}],
        # With a ref, the uri is a path relative to the ref's address.
        "properties": {"ref": _REFERENCE, "uri": {"type": "string", "pattern": "^/"}},
        "additionalProperties": False,
    },
    "delivery": _object([], {
        "retry": {"type": "integer", "minimum": 0},
        "backoffPolicy": {"enum": ["linear", "exponential"]},
        "backoffDelay": _ISO_DURATION,
    }),
})
_TRIGGER_METADATA = {"annotations": {"type": "object", "properties": {
    "rabbitmq.eventing.knative.dev/parallelism": {"type": "string", "pattern": "^([1-9][0-9]{0,2}|1000)$"},
}}}

_SCALED_OBJECT = _object(["scaleTargetRef", "triggers"], {
    "scaleTargetRef": _object(["name"], {"name": _NAME, "kind": {"const": "Deployment"}, "apiVersion": {"const": "apps/v1"}}),
    "minReplicaCount": {"type": "integer", "minimum": 0},
    "maxReplicaCount": {"type": "integer", "minimum": 1},
    "pollingInterval": {"type": "integer", "minimum": 1},
    "cooldownPeriod": {"type": "integer", "minimum": 0},
    "advanced": {"type": "object"},
    "triggers": {"type": "array", "minItems": 1, "items": _object(["type", "metadata"], {
        "type": {"type": "string"},
        "metadata": _STRINGS,  # KEDA reads every trigger parameter as a string
        "authenticationRef": _NAME_REF,
    })},
})
_RABBITMQ_TRIGGER = _object(["queueName", "mode", "value"], {  # KEDA's rabbitmq scaler, without host (from the auth)
    "protocol": {"enum": ["auto", "amqp", "http"]},
    "queueName": {"type": "string", "minLength": 1},
    "mode": {"enum": ["QueueLength", "MessageRate"]},
    "value": {"type": "string", "pattern": r"^[0-9]+(\.[0-9]+)?$"},
    "activationValue": {"type": "string"},
    "vhostName": {"type": "string"},
})
_TRIGGER_AUTHENTICATION = _object(["secretTargetRef"], {
    "secretTargetRef": {"type": "array", "minItems": 1, "items": _object(["parameter", "name", "key"], {
        "parameter": {"type": "string"}, "name": _NAME, "key": {"type": "string"},
    })},
})

CUSTOM_RESOURCES: dict[tuple[str, str], dict[str, Any]] = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): _resource(_SERVICE_MONITOR),
    ("monitoring.coreos.com/v1", "PrometheusRule"): _resource(_PROMETHEUS_RULE),
    ("eventing.knative.dev/v1", "Broker"): _resource(_BROKER, {"annotations": {
        "type": "object", "required": ["eventing.knative.dev/broker.class"],
        "properties": {"eventing.knative.dev/broker.class": {"const": "RabbitMQBroker"}},
    }}),
    ("eventing.knative.dev/v1alpha1", "RabbitmqBrokerConfig"): _resource(_BROKER_CONFIG),
    ("eventing.knative.dev/v1", "Trigger"): _resource(_TRIGGER, _TRIGGER_METADATA),
    ("keda.sh/v1alpha1", "ScaledObject"): _resource(_SCALED_OBJECT),
    ("keda.sh/v1alpha1", "TriggerAuthentication"): _resource(_TRIGGER_AUTHENTICATION),
}
SCALER_METADATA = {"rabbitmq": _RABBITMQ_TRIGGER}

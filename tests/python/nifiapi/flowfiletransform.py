"""Stand-in for NiFi 2.x `nifiapi.flowfiletransform` (see the package docstring).

Same shapes as NiFi's module: `FlowFileTransform` is an abstract base whose `transform(context,
flowFile)` returns a `FlowFileTransformResult(relationship, attributes=None, contents=None)`;
the framework calls `setContext` once and then `transformFlowFile` per FlowFile. Differences,
all on the Java side of NiFi's version: `getAttributes()` returns a plain dict (NiFi copies it
into a `java.util.HashMap`), and there is no Py4J `JvmHolder`.

What NiFi's Java proxy (`FlowFileTransformProxy`) then does with a result is mirrored by
`route()` here, so tests can check what would reach each relationship: `failure` puts the
attributes on the incoming FlowFile and routes it to `failure` (contents are ignored); any
other relationship gets the incoming FlowFile with the attributes added and the contents
replaced when given, and an unchanged copy goes to `original`.
"""

from abc import ABC, abstractmethod


class FlowFileTransform(ABC):
    def __init__(self, **kwargs):
        # NiFi keeps a handle on java.util.ArrayList here; nothing is needed without a JVM.
        pass

    def setContext(self, context):
        self.process_context = context

    def transformFlowFile(self, flowfile):
        return self.transform(self.process_context, flowfile)

    @abstractmethod
    def transform(self, context, flowFile):
        pass


class FlowFileTransformResult:
    class Java:
        implements = ["org.apache.nifi.python.processor.FlowFileTransformResult"]

    def __init__(self, relationship, attributes=None, contents=None):
        self.relationship = relationship
        self.attributes = attributes
        if contents is not None and isinstance(contents, str):
            self.contents = str.encode(contents)
        else:
            self.contents = contents

    def getRelationship(self):
        return self.relationship

    def getContents(self):
        return self.contents

    def getAttributes(self):
        if self.attributes is None:
            return None
        return dict(self.attributes)


def route(result, attributes, contents):
    """What NiFi's FlowFileTransformProxy transfers for one result (single-result form).

    Returns `{relationship: (attributes, contents)}` for every FlowFile that leaves the
    processor. Not part of NiFi's Python API: a helper for tests (the proxy is Java).
    Like NiFi, rejects values that are not strings (attributes must be `str` -> `str`).
    """
    for k, v in (result.getAttributes() or {}).items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise TypeError(f"attribute {k!r}={v!r}: NiFi attributes are strings")
    rel = result.getRelationship()
    new_attrs = dict(attributes)
    new_attrs.update({k: v for k, v in (result.getAttributes() or {}).items() if k != "uuid"})
    if rel == "failure":
        return {"failure": (new_attrs, contents)}
    new_contents = result.getContents()
    if new_contents is not None and not isinstance(new_contents, (bytes, bytearray)):
        raise TypeError("contents must be bytes or str")
    return {
        rel: (new_attrs, contents if new_contents is None else bytes(new_contents)),
        "original": (dict(attributes), contents),
    }

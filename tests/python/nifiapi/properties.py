"""Stand-in for NiFi 2.x `nifiapi.properties` (see the package docstring).

Same names and signatures as NiFi's module. Where NiFi delegates to Java, this does:

- `StandardValidators` members are small Python validators (in NiFi: Java `Validator`
  objects); `ProcessContext` runs them when it is built, as NiFi validates a processor
  before scheduling it, and raises `ValueError` where NiFi would mark the processor invalid.
  Only the validators listed here exist.
- `PythonPropertyValue.asTimePeriod` / `asDataSize` parse NiFi's formats (`30 secs`,
  `500 millis`, `64 MB`) as NiFi's `FormatUtils` / `DataUnit` do: a time period comes back
  as an integer in the unit asked for (a Java `long`), a data size as a float (a `double`);
  data units are powers of 1024.
- `evaluateAttributeExpressions(flowfile)` supports plain attribute references (`${name}`,
  also inside other text); any other Expression Language raises `NotImplementedError`
  (NiFi evaluates all of it in Java).
- `ProcessContext(descriptors, properties, name)` is built from the processor's descriptors
  and a dict of the values a user set (NiFi builds it from a Java `ProcessContext`);
  unset properties take their `default_value`. `yield_resources()` records the call in
  `yielded` (NiFi yields the processor for its Yield Duration).
"""

import re
from enum import Enum


class ExpressionLanguageScope(Enum):
    NONE = 1
    ENVIRONMENT = 2
    FLOWFILE_ATTRIBUTES = 3


# --------------------------------------------------------------------------
# Formats (NiFi's FormatUtils and DataUnit)
# --------------------------------------------------------------------------

_NANOS = {
    "ns": 1, "nanos": 1, "nanosecond": 1, "nanoseconds": 1,
    "ms": 10**6, "milli": 10**6, "millis": 10**6, "millisecond": 10**6, "milliseconds": 10**6,
    "msec": 10**6, "msecs": 10**6,
    "s": 10**9, "sec": 10**9, "secs": 10**9, "second": 10**9, "seconds": 10**9,
    "m": 60 * 10**9, "min": 60 * 10**9, "mins": 60 * 10**9, "minute": 60 * 10**9,
    "minutes": 60 * 10**9,
    "h": 3600 * 10**9, "hr": 3600 * 10**9, "hrs": 3600 * 10**9, "hour": 3600 * 10**9,
    "hours": 3600 * 10**9,
    "d": 86400 * 10**9, "day": 86400 * 10**9, "days": 86400 * 10**9,
    "w": 7 * 86400 * 10**9, "wk": 7 * 86400 * 10**9, "wks": 7 * 86400 * 10**9,
    "week": 7 * 86400 * 10**9, "weeks": 7 * 86400 * 10**9,
}
_TIME_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]+)\s*$")
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|TB)\s*$", re.IGNORECASE)
_SIZE_BYTES = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}


def _nanos(text):
    m = _TIME_RE.match(text or "")
    if not m or m.group(2).lower() not in _NANOS:
        raise ValueError(f"{text!r} is not a valid time period (e.g. '30 secs')")
    return float(m.group(1)) * _NANOS[m.group(2).lower()]


def _bytes(text):
    m = _SIZE_RE.match(text or "")
    if not m:
        raise ValueError(f"{text!r} is not a valid data size (e.g. '64 MB')")
    return float(m.group(1)) * _SIZE_BYTES[m.group(2).upper()]


class TimeUnit(Enum):
    NANOSECONDS = "NANOSECONDS"
    MICROSECONDS = "MICROSECONDS"
    MILLISECONDS = "MILLISECONDS"
    SECONDS = "SECONDS"
    MINUTES = "MINUTES"
    HOURS = "HOURS"
    DAYS = "DAYS"


_UNIT_NANOS = {
    TimeUnit.NANOSECONDS: 1,
    TimeUnit.MICROSECONDS: 10**3,
    TimeUnit.MILLISECONDS: 10**6,
    TimeUnit.SECONDS: 10**9,
    TimeUnit.MINUTES: 60 * 10**9,
    TimeUnit.HOURS: 3600 * 10**9,
    TimeUnit.DAYS: 86400 * 10**9,
}


class DataUnit(Enum):
    B = "B"
    KB = "KB"
    MB = "MB"
    GB = "GB"
    TB = "TB"


# --------------------------------------------------------------------------
# Validators
# --------------------------------------------------------------------------


class _Validator:
    """One of NiFi's standard validators: `check(value)` returns an explanation or None."""

    def __init__(self, name, check):
        self.name = name
        self._check = check

    def validate(self, value):
        try:
            return self._check(value)
        except (ValueError, re.error) as e:
            return str(e)

    def __repr__(self):
        return f"StandardValidators.{self.name}"


def _non_empty(v):
    return None if v is not None and v.strip() else "must not be empty"


def _integer(v, minimum=None):
    n = int(v)
    if minimum is not None and n < minimum:
        return f"must be at least {minimum}"
    return None


def _port(v):
    n = int(v)
    return None if 1 <= n <= 65535 else "must be a port number (1-65535)"


def _boolean(v):
    return None if v.lower() in ("true", "false") else "must be true or false"


def _url(v):
    return None if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://\S+$", v) else "must be a URL"


def _hostname_port_list(v):
    for part in v.split(","):
        if not re.match(r"^\s*[^\s:]+:\d{1,5}\s*$", part):
            return f"{part.strip()!r} is not host:port"
    return None


def _regex(v):
    re.compile(v)
    return None


def _el_or(check):
    """NiFi's *_EL_VALIDATORs accept anything once Expression Language is present."""
    return lambda v: None if "${" in v else check(v)


class StandardValidators:
    ALWAYS_VALID = _Validator("ALWAYS_VALID", lambda v: None)
    NON_EMPTY_VALIDATOR = _Validator("NON_EMPTY_VALIDATOR", _non_empty)
    INTEGER_VALIDATOR = _Validator("INTEGER_VALIDATOR", _integer)
    POSITIVE_INTEGER_VALIDATOR = _Validator("POSITIVE_INTEGER_VALIDATOR", lambda v: _integer(v, 1))
    POSITIVE_LONG_VALIDATOR = _Validator("POSITIVE_LONG_VALIDATOR", lambda v: _integer(v, 1))
    NON_NEGATIVE_INTEGER_VALIDATOR = _Validator(
        "NON_NEGATIVE_INTEGER_VALIDATOR", lambda v: _integer(v, 0)
    )
    NUMBER_VALIDATOR = _Validator("NUMBER_VALIDATOR", lambda v: float(v) and None)
    LONG_VALIDATOR = _Validator("LONG_VALIDATOR", _integer)
    PORT_VALIDATOR = _Validator("PORT_VALIDATOR", _port)
    NON_EMPTY_EL_VALIDATOR = _Validator("NON_EMPTY_EL_VALIDATOR", _non_empty)
    HOSTNAME_PORT_LIST_VALIDATOR = _Validator("HOSTNAME_PORT_LIST_VALIDATOR", _hostname_port_list)
    BOOLEAN_VALIDATOR = _Validator("BOOLEAN_VALIDATOR", _boolean)
    URL_VALIDATOR = _Validator("URL_VALIDATOR", _el_or(_url))
    URI_VALIDATOR = _Validator("URI_VALIDATOR", _el_or(_url))
    REGULAR_EXPRESSION_VALIDATOR = _Validator("REGULAR_EXPRESSION_VALIDATOR", _regex)
    REGULAR_EXPRESSION_WITH_EL_VALIDATOR = _Validator(
        "REGULAR_EXPRESSION_WITH_EL_VALIDATOR", _el_or(_regex)
    )
    TIME_PERIOD_VALIDATOR = _Validator("TIME_PERIOD_VALIDATOR", lambda v: _nanos(v) and None)
    DATA_SIZE_VALIDATOR = _Validator("DATA_SIZE_VALIDATOR", lambda v: _bytes(v) and None)
    FILE_EXISTS_VALIDATOR = _Validator(
        "FILE_EXISTS_VALIDATOR",
        lambda v: None if __import__("os").path.exists(v) else f"{v} does not exist",
    )


# --------------------------------------------------------------------------
# Descriptors
# --------------------------------------------------------------------------


class PropertyDependency:
    def __init__(self, property_descriptor, *dependent_values):
        if dependent_values is None:
            dependent_values = []
        self.property_descriptor = property_descriptor
        self.dependent_values = dependent_values


class ResourceDefinition:
    def __init__(self, allow_multiple=False, allow_file=True, allow_url=False,
                 allow_directory=False, allow_text=False):
        self.allow_multiple = allow_multiple
        self.allow_file = allow_file
        self.allow_url = allow_url
        self.allow_directory = allow_directory
        self.allow_text = allow_text


class PropertyDescriptor:
    def __init__(self, name, description, required=False, sensitive=False,
                 display_name=None, default_value=None, allowable_values=None,
                 dependencies=None, expression_language_scope=ExpressionLanguageScope.NONE,
                 dynamic=False, validators=None,
                 resource_definition=None, controller_service_definition=None):
        if validators is None:
            validators = [StandardValidators.ALWAYS_VALID]

        self.name = name
        self.description = description
        self.required = required
        self.sensitive = sensitive
        self.displayName = display_name
        self.defaultValue = None if default_value is None else str(default_value)
        self.allowableValues = allowable_values
        self.dependencies = dependencies
        self.expressionLanguageScope = expression_language_scope
        self.dynamic = dynamic
        self.validators = validators
        self.resourceDefinition = resource_definition
        self.controllerServiceDefinition = controller_service_definition


# --------------------------------------------------------------------------
# Context and values
# --------------------------------------------------------------------------


class PythonPropertyValue:
    _REFERENCE = re.compile(r"\$\{([^${}\[\],:;/*' \t\r\n\d][^${}\[\],:;/*' \t\r\n]*)\}")

    def __init__(self, property_value, string_value, el_supported, el_present,
                 referenced_attribute):
        self.value = string_value
        self.property_value = property_value
        self.el_supported = el_supported
        self.el_present = el_present
        self.referenced_attribute = referenced_attribute

    def getValue(self):
        return self.value

    def isSet(self):
        return self.value is not None

    def isExpressionLanguagePresent(self):
        return self.el_present

    def asInteger(self):
        if self.value is None:
            return None
        return int(self.value)

    def asBoolean(self):
        if self.value is None:
            return None
        return self.value.lower() == "true"

    def asFloat(self):
        if self.value is None:
            return None
        return float(self.value)

    def asTimePeriod(self, time_unit):
        if self.value is None:
            return None
        return int(_nanos(self.value) // _UNIT_NANOS[time_unit])

    def asDataSize(self, data_unit):
        if self.value is None:
            return None
        return _bytes(self.value) / _SIZE_BYTES[data_unit.name]

    def evaluateAttributeExpressions(self, attributeMap=None):
        if not (self.el_supported and self.el_present):
            return self

        def attribute(m):
            value = attributeMap.getAttribute(m.group(1)) if attributeMap is not None else None
            return "" if value is None else value

        rest = self._REFERENCE.sub("", self.value)
        if "${" in rest:
            raise NotImplementedError(
                f"the nifiapi stand-in evaluates only ${{attribute}} references, not {self.value!r}"
            )
        new_value = self._REFERENCE.sub(attribute, self.value)
        return PythonPropertyValue(self.property_value, new_value, self.el_supported, False, None)


class PropertyContext:
    def getProperty(self, descriptor):
        property_name = descriptor if isinstance(descriptor, str) else descriptor.name
        return self.property_values.get(property_name)

    def getProperties(self):
        return self.descriptor_value_map

    def newPropertyValue(self, value):
        return PythonPropertyValue(None, value, True, value is not None and "${" in value, None)


class ProcessContext(PropertyContext):
    def __init__(self, descriptors, properties=None, name="processor"):
        properties = dict(properties or {})
        known = {d.name for d in descriptors}
        unknown = sorted(set(properties) - known)
        if unknown:
            raise ValueError(f"unknown properties {unknown} (the processor declares {sorted(known)})")
        self.name = name
        self.yielded = 0
        self.property_values = {}
        self.descriptor_value_map = {}
        problems = []
        for d in descriptors:
            value = properties.get(d.name, d.defaultValue)
            if value is None:
                if d.required:
                    problems.append(f"'{d.name}' is required")
            else:
                if d.allowableValues is not None and value not in d.allowableValues:
                    problems.append(f"'{d.name}': {value!r} is not one of {d.allowableValues}")
                for v in d.validators:
                    explanation = v.validate(value)
                    if explanation:
                        problems.append(f"'{d.name}': {value!r} {explanation}")
            el_supported = d.expressionLanguageScope != ExpressionLanguageScope.NONE
            el_present = value is not None and "${" in value
            self.property_values[d.name] = PythonPropertyValue(
                None, value, el_supported, el_present, None
            )
            self.descriptor_value_map[d] = value
        if problems:
            raise ValueError(f"processor '{name}' is invalid: " + "; ".join(problems))

    def getName(self):
        return self.name

    def yield_resources(self):
        self.yielded += 1

"""A stand-in for Apache NiFi 2.x's `nifiapi` package, for tests only.

NiFi's Python framework (`nifi-python-extension-api`) is not on the package index: NiFi ships
it and runs Python processors against a JVM over Py4J. These modules have the same module
names, class names, constructor signatures, attribute names and methods as NiFi's, for the
two modules a FlowFileTransform processor imports:

- `nifiapi.flowfiletransform`: `FlowFileTransform`, `FlowFileTransformResult`;
- `nifiapi.properties`: `PropertyDescriptor`, `StandardValidators`, `ExpressionLanguageScope`,
  `PropertyDependency`, `ProcessContext`, `PythonPropertyValue`, `TimeUnit`, `DataUnit`.

Where NiFi calls into Java (validators, time periods, data sizes, Expression Language, the
process context), the stand-in does the same work in Python; each module says how, and what
it leaves out. Nothing here is used outside the tests: inside NiFi the real package is found
first (this directory is only on `sys.path` under pytest).
"""

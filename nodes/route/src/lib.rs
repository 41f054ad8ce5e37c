//! The `route` node: routes FlowFiles by rules over their attributes and sets their priority.
//!
//! Not implemented yet: the crate holds the node's place in the workspace so that every node
//! type has its own crate from the start. It is not registered in the `loupe` binary, so a
//! flow that uses `type: route` fails `loupe validate` with "unknown node type" until it lands.

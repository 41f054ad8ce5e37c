//! The `route` node (being written).

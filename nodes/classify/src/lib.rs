//! The `classify` node (being written).

//! The `preprocess` node (being written).

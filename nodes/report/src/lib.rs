//! The `report` node (being written).

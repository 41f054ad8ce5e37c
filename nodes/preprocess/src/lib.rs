//! The `preprocess` node: decodes camera images (JPEG, PNG, BMP, TIFF), applies EXIF orientation, crops and resizes them for the models.
//!
//! Not implemented yet: the crate holds the node's place in the workspace so that every node
//! type has its own crate from the start. It is not registered in the `loupe` binary, so a
//! flow that uses `type: preprocess` fails `loupe validate` with "unknown node type" until it lands.

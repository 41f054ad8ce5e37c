//! The `segment` node: runs ONNX segmentation models and turns masks into defect regions, contours and overlay images.
//!
//! Not implemented yet: the crate holds the node's place in the workspace so that every node
//! type has its own crate from the start. It is not registered in the `loupe` binary, so a
//! flow that uses `type: segment` fails `loupe validate` with "unknown node type" until it lands.

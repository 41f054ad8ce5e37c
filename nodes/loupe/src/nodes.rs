//! The node types this binary hosts, in-process (`loupe run`) or alone (`loupe serve`).

use loupe_sdk::Registry;

/// Every node type built into `loupe`.
pub fn registry() -> Registry {
    Registry::new()
        .with::<loupe_capture::Capture>()
        .with::<loupe_classify::Classify>()
        .with::<loupe_preprocess::Preprocess>()
        .with::<loupe_report::Report>()
        .with::<loupe_route::Route>()
        .with::<loupe_segment::Segment>()
}

//! A compiled flow as an Apache NiFi 2.x flow definition (`loupe nifi export`).
//!
//! The result is NiFi's `RegisteredFlowSnapshot`, the JSON that the NiFi UI imports with
//! "Upload flow definition" (and exports with "Download flow definition"): one process group
//! named after the flow, bound to a parameter context of the same name. The structure follows
//! a real NiFi export field by field (`tests/data/nifi-flow-definition-example.json`), plus
//! the process group's `parameterContextName` (the binding; without it every `#{...}`
//! reference is invalid).
//!
//! ## Layout
//!
//! - [`model`]: the flow-definition data model, the serde structs written as JSON.
//! - [`catalogue`]: the NiFi processor types (class, bundle, relationships) used for Loupe
//!   nodes, and the fixed property values they get.
//! - [`expressions`]: Loupe values as NiFi text: Expression Language literals and attribute
//!   references, globs as Java regexes, time periods and data sizes.
//! - [`builder`]: walks a compiled flow and emits the process group ([`export`]).
//!
//! ## How Loupe nodes become NiFi processors
//!
//! - **Processing nodes** (`preprocess`, `classify`, `segment`, `route`, `report`, ...) stay
//!   Loupe nodes: each is called by an `InvokeHTTP` processor. Every Loupe node answers
//!   `POST /process` on its gRPC port (`loupe_sdk::serve::http`): request body = FlowFile
//!   content, request headers = attributes (all but NiFi's file location and earlier answer
//!   headers, [`REQUEST_HEADER_ATTRIBUTES`]); response body = the first output's content,
//!   response headers = the attributes the node set, plus [`RELATIONSHIP_HEADER`] naming the
//!   Loupe relationship. A Loupe `failure` is answered 422, an overloaded or starting node
//!   503. InvokeHTTP's `Response` FlowFile is a child of the request FlowFile with the
//!   response headers added as attributes, so the verdicts travel on with the content (no
//!   "Response Header Request Attributes" needed: `Original` is dropped).
//! - **Relationships**: Loupe `success` -> InvokeHTTP `Response`; Loupe `failure` ->
//!   `Failure` (transport error), `No Retry` (422 and other 4xx) and `Retry` (503). The
//!   node's `retry`
//!   policy becomes NiFi's processor retry on `Failure` and `Retry` (`retryCount` =
//!   `max_attempts - 1`, penalty = `initial_backoff` doubling up to `max_backoff`, which is
//!   what Loupe's runner does; a node without `max_attempts`, which Loupe retries until it
//!   answers, gets NiFi's 10 retries). `Original` is auto-terminated.
//! - A node with more relationships than `success`/`failure` (a `route` node's rules,
//!   `segment`'s `overlay`/`mask`) gets a `RouteOnAttribute` after its InvokeHTTP, strategy
//!   "Route to Property name", one property per relationship. For `route` the property is
//!   `${route:equals('<rule>')}`: the Loupe route node evaluates its CEL rules itself and
//!   writes the relationship it chose into `route`, so the NiFi routing is exactly Loupe's
//!   (no CEL-to-Expression-Language translation that could differ at the edges). Other
//!   nodes route on [`RELATIONSHIP_HEADER`]. `unmatched` is RouteOnAttribute's own
//!   `unmatched`. (One HTTP exchange carries one output: with `strategy: all` only the first
//!   matching rule's copy comes back, and `segment`'s overlay and mask need calls of their
//!   own.)
//! - **The `capture` source** becomes NiFi's own source processors, chosen from its settings:
//!   `directory` -> `ListFile` + `FetchFile` (FetchFile's completion strategy does what
//!   `after: delete|move` does, which GetFile cannot: GetFile either deletes or re-reads the
//!   same files forever); static `metadata.attributes` -> an `UpdateAttribute` after them;
//!   `upload` alone -> `ListenHTTP` on the same port and path (`/upload`); `snapshot` alone ->
//!   a source `InvokeHTTP` GET on the camera URL every `interval`. Manifest, sidecar and file
//!   name metadata have no NiFi equivalent and are not reproduced (the processor's comments
//!   say so). A capture without settings (remote) is read from a directory parameter.
//! - **Connections**: one per flow connection, with its prioritizer, back pressure and
//!   expiration; one per internal step (ListFile -> FetchFile, InvokeHTTP -> RouteOnAttribute)
//!   with NiFi's defaults. Every NiFi relationship left unconnected is auto-terminated, so a
//!   Loupe `auto_terminate` becomes NiFi auto-termination.
//!
//! ## Parameters
//!
//! The parameter context named after the flow holds one parameter per processing node,
//! `loupe.<node-id>.url`, the node's `POST /process` URL, referenced by the InvokeHTTP's
//! `HTTP URL` as `#{loupe.<node-id>.url}`. Its default is the node's `endpoint`
//! (`endpoints[0]`; NiFi calls one URL) + `/process` for a remote node, else
//! `http://loupe-<node-id>:50051/process`: the Docker Compose service `loupe-<node-id>`
//! running `loupe serve TYPE` on the default port. A capture's directory is
//! `loupe.<node-id>.directory` (default: the flow's directory made absolute), so a NiFi
//! running elsewhere only needs its parameters changed.
//!
//! ## Stable output
//!
//! Identifiers are name-based UUIDs (version 5) of the flow name and the component's role
//! (`<flow>/processor/<node-id>/<step>`), maps are sorted, and positions are laid out top to
//! bottom in file order: exporting the same flow twice gives the same bytes, and a changed
//! flow gives a readable diff.
//!
//! [`REQUEST_HEADER_ATTRIBUTES`]: catalogue::REQUEST_HEADER_ATTRIBUTES
//! [`RELATIONSHIP_HEADER`]: catalogue::RELATIONSHIP_HEADER

mod builder;
mod catalogue;
mod expressions;
mod model;

pub use builder::export;

//! A record's provenance events, read from the JSON-lines file `loupe run --provenance`
//! writes (NiFi's event types: RECEIVE, ROUTE, CLONE, FORK, DROP, ...).

use std::io::{BufRead, BufReader};
use std::path::Path;

use serde::Deserialize;

/// The most events shown for one FlowFile.
const MAX_EVENTS: usize = 200;
/// The most of the file read (its first part: a long-running flow rotates it).
const MAX_READ_BYTES: u64 = 512 * 1024 * 1024;

/// One provenance event.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub(super) struct ProvenanceEvent {
    /// When, Unix ms.
    pub time_ms: i64,
    /// NiFi's event type.
    #[serde(rename = "type")]
    pub event_type: String,
    /// The FlowFile.
    pub uuid: String,
    /// Where it happened.
    pub node: String,
    /// Relationship, for ROUTE/DROP.
    #[serde(default)]
    pub relationship: Option<String>,
    /// The parent, for CLONE/FORK.
    #[serde(default)]
    pub parent: Option<String>,
    /// Free text.
    #[serde(default)]
    pub details: Option<String>,
}

/// The events of FlowFile `uuid` and of the FlowFiles made from it, in file order. Blocking.
pub(super) fn events_of(file: &Path, uuid: &str) -> std::io::Result<Vec<ProvenanceEvent>> {
    let reader = BufReader::new(std::io::Read::take(
        std::fs::File::open(file)?,
        MAX_READ_BYTES,
    ));
    let mut events = Vec::new();
    for line in reader.lines() {
        let line = line?;
        if !line.contains(uuid) {
            continue;
        }
        if let Ok(event) = serde_json::from_str::<ProvenanceEvent>(&line)
            && (event.uuid == uuid || event.parent.as_deref() == Some(uuid))
        {
            events.push(event);
            if events.len() >= MAX_EVENTS {
                break;
            }
        }
    }
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_this_flow_files_events_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("provenance.jsonl");
        std::fs::write(
            &file,
            concat!(
                r#"{"time_ms":1,"type":"RECEIVE","uuid":"a","node":"camera"}"#, "\n",
                r#"{"time_ms":2,"type":"RECEIVE","uuid":"b","node":"camera"}"#, "\n",
                "not json a\n",
                r#"{"time_ms":3,"type":"FORK","uuid":"c","node":"segment","parent":"a"}"#, "\n",
                r#"{"time_ms":4,"type":"ROUTE","uuid":"a","node":"route","relationship":"confirmed"}"#, "\n",
            ),
        )
        .unwrap();
        let events = events_of(&file, "a").unwrap();
        let kinds: Vec<_> = events.iter().map(|e| e.event_type.as_str()).collect();
        assert_eq!(kinds, ["RECEIVE", "FORK", "ROUTE"]);
        assert_eq!(events[2].relationship.as_deref(), Some("confirmed"));
    }
}

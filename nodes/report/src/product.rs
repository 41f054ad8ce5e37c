//! Product verdicts: the images of one product (its angles, joined by `fragment.identifier` /
//! `product.id` and `fragment.count`, NiFi's convention) make one verdict under the flow's
//! product policy ([`crate::policy`]). A product is `defective` when enough angles stop,
//! `review` when an angle needs a person (an unusable frame, a failure), `ok` when every angle
//! is in and passed, and `incomplete` when its angles stopped arriving for `timeout` —
//! reported, never silently dropped, and stopped like every verdict but `ok`.
//!
//! The verdict is computed from the stored records, not from memory, so it survives a
//! restart and is the same whichever report node (sharing a PostgreSQL database) sees the
//! last angle; the products table keeps one verdict per product (first decision wins). The
//! rows themselves ([`AngleRow`], [`ProductVerdict`], [`Verdict`]) are `loupe_store`'s.

use std::collections::HashMap;

use loupe_store::product::{AngleRow, ProductVerdict, Verdict};

use crate::policy::{AngleDecision, AngleFacts, Policy};

/// The verdict of `product_id` from its stored angles under `policy`: `Some` once it can be
/// decided — every expected angle is in, or `timed_out` (then `defective` if enough angles
/// stopped, `review` if one needs a person, else `incomplete`). A stopped angle decides
/// nothing early: the product waits for its other angles so the verdict lists every reason.
pub fn decide(
    product_id: &str,
    rows: &[AngleRow],
    policy: &Policy,
    camera_flag: &str,
    timed_out: bool,
    now_ms: i64,
) -> Option<ProductVerdict> {
    let expected = rows.iter().filter_map(|r| r.fragment_count).max()?;
    let mut angles: Vec<i32> = rows.iter().filter_map(|r| r.angle).collect();
    angles.sort_unstable();
    angles.dedup();
    let complete = angles.len() as i32 >= expected;
    if !complete && !timed_out {
        return None;
    }
    // One vote per angle (a redelivered image may be stored twice under another uuid): the
    // angle's strictest decision.
    let mut per_angle: HashMap<i32, (AngleDecision, String)> = HashMap::new();
    let mut camera: Vec<i32> = Vec::new();
    for row in rows {
        let Some(angle) = row.angle else { continue };
        let decided = policy.decide(&AngleFacts {
            model_label: row.model_label.as_deref(),
            error_kind: row.error_kind.as_deref(),
            attributes: Some(&row.attributes),
        });
        let slot = per_angle
            .entry(angle)
            .or_insert((AngleDecision::Pass, String::new()));
        if decided.0 > slot.0 {
            *slot = decided;
        }
        if row.camera_verdict.as_deref() == Some(camera_flag) {
            camera.push(angle);
        }
    }
    camera.sort_unstable();
    camera.dedup();
    let reasons = |decisions: &[AngleDecision]| {
        let mut r: Vec<&str> = per_angle
            .values()
            .filter(|(d, _)| decisions.contains(d))
            .map(|(_, why)| why.as_str())
            .filter(|why| !why.is_empty())
            .collect();
        r.sort_unstable();
        r.dedup();
        r.join(",")
    };
    let count =
        |decision: AngleDecision| per_angle.values().filter(|(d, _)| *d == decision).count() as u32;
    let (stopped, suspect) = (count(AngleDecision::Stop), count(AngleDecision::Suspect));
    // The angles that stop the product: the stopped ones, with the suspect ones when the
    // stopped ones alone are not enough.
    let deciding: &[AngleDecision] = if policy.stops(stopped, 0) {
        &[AngleDecision::Stop]
    } else {
        &[AngleDecision::Stop, AngleDecision::Suspect]
    };
    let defect_angles = per_angle
        .values()
        .filter(|(d, _)| deciding.contains(d))
        .count() as i32;
    let (verdict, defects) = if policy.stops(stopped, suspect) {
        (Verdict::Defective, reasons(deciding))
    } else if count(AngleDecision::Review) > 0 {
        (Verdict::Review, reasons(&[AngleDecision::Review]))
    } else if complete {
        (Verdict::Ok, String::new())
    } else {
        (Verdict::Incomplete, String::new())
    };
    Some(ProductVerdict {
        product_id: product_id.to_string(),
        verdict,
        line: rows.iter().find_map(|r| r.line.clone()),
        angles: angles.len() as i32,
        expected,
        defect_angles,
        camera_flagged: camera.len() as i32,
        defects,
        decided_ms: now_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(angle: i32, label: &str, camera: &str) -> AngleRow {
        AngleRow {
            angle: Some(angle),
            fragment_count: Some(4),
            model_label: Some(label.to_string()),
            camera_verdict: Some(camera.to_string()),
            line: Some("L1".to_string()),
            recorded_ms: 0,
            ..Default::default()
        }
    }

    fn labels() -> Policy {
        Policy::model_labels(&["loose_wire".to_string()])
    }

    #[test]
    fn a_product_is_decided_when_all_angles_are_in() {
        let mut rows = vec![
            row(0, "ok", "ok"),
            row(1, "burr", "loose_wire"),
            row(2, "ok", "ok"),
        ];
        assert_eq!(decide("p", &rows, &labels(), "loose_wire", false, 5), None);
        rows.push(row(2, "ok", "ok")); // a redelivery does not complete it
        assert_eq!(decide("p", &rows, &labels(), "loose_wire", false, 5), None);
        rows.push(row(3, "ok", "ok"));
        let v = decide("p", &rows, &labels(), "loose_wire", false, 5).unwrap();
        assert_eq!((v.verdict, v.angles, v.expected), (Verdict::Ok, 4, 4));
        assert_eq!((v.defect_angles, v.camera_flagged), (0, 1));
    }

    #[test]
    fn any_defective_angle_makes_the_product_defective() {
        let rows = vec![
            row(0, "ok", "ok"),
            row(1, "loose_wire", "loose_wire"),
            row(2, "loose_wire", "loose_wire"),
            row(3, "burr", "loose_wire"),
        ];
        let v = decide("p", &rows, &labels(), "loose_wire", false, 5).unwrap();
        assert_eq!(
            (v.verdict, v.defect_angles, v.camera_flagged),
            (Verdict::Defective, 2, 3)
        );
        assert_eq!(v.defects, "loose_wire");
    }

    #[test]
    fn a_timed_out_product_is_incomplete_or_defective() {
        let rows = vec![row(0, "ok", "ok")];
        let v = decide("p", &rows, &labels(), "loose_wire", true, 5).unwrap();
        assert_eq!((v.verdict, v.angles), (Verdict::Incomplete, 1));
        let rows = vec![row(0, "loose_wire", "ok")];
        let v = decide("p", &rows, &labels(), "loose_wire", true, 5).unwrap();
        assert_eq!(v.verdict, Verdict::Defective);
        let unknown = AngleRow {
            fragment_count: None,
            ..row(0, "ok", "ok")
        };
        assert_eq!(
            decide("p", &[unknown], &labels(), "loose_wire", true, 5),
            None
        );
    }

    fn recheck() -> Policy {
        let settings: crate::policy::PolicySettings = serde_json::from_value(serde_json::json!({
            "angles": [
                {"when": "attrs[\"frame.usable\"] == \"false\"", "decision": "review", "reason": "unusable frame"},
                {"when": "camera.verdict == \"loose_wire\" && double(classify.scores.loose_wire) >= 0.2", "decision": "stop", "reason": "loose_wire"},
                {"when": "double(classify.scores.loose_wire) >= 0.9", "decision": "stop", "reason": "loose_wire (camera missed)"},
            ]
        }))
        .unwrap();
        Policy::new(&settings, &[]).unwrap()
    }

    fn seen(angle: i32, camera: &str, p_loose: &str, usable: bool) -> AngleRow {
        let mut r = row(angle, "ok", camera);
        r.attributes = [
            ("camera.verdict", camera),
            ("classify.scores.loose_wire", p_loose),
            ("frame.usable", if usable { "true" } else { "false" }),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        r
    }

    #[test]
    fn the_policy_decides_each_angle_and_the_product() {
        let p = recheck();
        // The camera's burr flag cleared; the model's unsure call on a passed angle ignored.
        let rows = vec![
            seen(0, "loose_wire", "0.05", true),
            seen(1, "ok", "0.6", true),
            seen(2, "ok", "0.01", true),
            seen(3, "ok", "0.01", true),
        ];
        let v = decide("p", &rows, &p, "loose_wire", false, 5).unwrap();
        assert_eq!(
            (v.verdict, v.defect_angles, v.camera_flagged),
            (Verdict::Ok, 0, 1)
        );
        // Camera and model agree on one angle: stopped.
        let mut stop = rows.clone();
        stop[0] = seen(0, "loose_wire", "0.3", true);
        let v = decide("p", &stop, &p, "loose_wire", false, 5).unwrap();
        assert_eq!(
            (v.verdict, v.defects.as_str()),
            (Verdict::Defective, "loose_wire")
        );
    }

    #[test]
    fn an_unusable_frame_sends_its_product_to_review_never_to_ok() {
        let p = recheck();
        let rows = vec![
            seen(0, "ok", "0.0", true),
            seen(1, "ok", "0.0", false),
            seen(2, "ok", "0.0", true),
            seen(3, "ok", "0.0", true),
        ];
        let v = decide("p", &rows, &p, "loose_wire", false, 5).unwrap();
        assert_eq!(
            (v.verdict, v.defects.as_str()),
            (Verdict::Review, "unusable frame")
        );
        assert!(Verdict::stops(v.verdict.as_str()));
        // A failed angle (no classify attributes) also goes to review.
        let mut failed = rows.clone();
        failed[1] = row(1, "", "ok");
        failed[1].error_kind = Some("invalid_input".into());
        let v = decide("p", &failed, &p, "loose_wire", false, 5).unwrap();
        assert_eq!(
            (v.verdict, v.defects.as_str()),
            (Verdict::Review, "failed: invalid_input")
        );
        // A stopped angle outranks a review.
        let mut both = rows;
        both[2] = seen(2, "loose_wire", "0.5", true);
        let v = decide("p", &both, &p, "loose_wire", false, 5).unwrap();
        assert_eq!(v.verdict, Verdict::Defective);
    }

    #[test]
    fn incomplete_products_are_reported_and_stopped() {
        let p = recheck();
        let rows = vec![seen(0, "ok", "0.0", true), seen(1, "ok", "0.0", true)];
        assert_eq!(decide("p", &rows, &p, "loose_wire", false, 5), None);
        let v = decide("p", &rows, &p, "loose_wire", true, 5).unwrap();
        assert_eq!(
            (v.verdict, v.angles, v.expected),
            (Verdict::Incomplete, 2, 4)
        );
        assert!(Verdict::stops(v.verdict.as_str()));
        assert!(!Verdict::stops("ok"));
    }

    #[test]
    fn weak_evidence_from_several_angles_stops_the_product() {
        let settings: crate::policy::PolicySettings = serde_json::from_value(serde_json::json!({
            "angles": [
                {"when": "double(classify.scores.loose_wire) >= 0.5", "decision": "stop", "reason": "loose_wire"},
                {"when": "double(classify.scores.loose_wire) >= 0.05", "decision": "suspect", "reason": "loose_wire (several angles)"},
            ],
            "suspect_angles": 2
        }))
        .unwrap();
        let p = Policy::new(&settings, &[]).unwrap();
        let one = vec![
            seen(0, "loose_wire", "0.1", true),
            seen(1, "ok", "0.01", true),
            seen(2, "ok", "0.01", true),
            seen(3, "ok", "0.01", true),
        ];
        let v = decide("p", &one, &p, "loose_wire", false, 5).unwrap();
        assert_eq!(v.verdict, Verdict::Ok, "one weak angle");
        let mut two = one.clone();
        two[1] = seen(1, "loose_wire", "0.2", true);
        let v = decide("p", &two, &p, "loose_wire", false, 5).unwrap();
        assert_eq!((v.verdict, v.defect_angles), (Verdict::Defective, 2));
        assert_eq!(v.defects, "loose_wire (several angles)");
    }
}

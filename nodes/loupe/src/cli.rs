//! The command line: the subcommands and their one-line help. Each command's arguments are
//! declared once, by the command's own module (`commands::<name>::Args` or `::Command`).

use clap::{Parser, Subcommand};

use crate::commands::{
    call, certs, dataset, demo, describe, eval, nifi, run, schema, serve, synth, users, validate,
};

/// Loupe: camera-based visual inspection with swappable deep-learning re-checks.
#[derive(Debug, Parser)]
#[command(name = "loupe", version, about, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check a flow file and print every error with its place in the file.
    Validate(validate::Args),
    /// Run a flow: host its in-process nodes, connect its remote ones, move FlowFiles.
    Run(run::Args),
    /// Serve one node type as its own gRPC process.
    Serve(serve::Args),
    /// Print a running node's description (type, version, relationships, settings schema).
    Describe(describe::Args),
    /// Send stdin as one FlowFile to a node; write the output content to stdout.
    ///
    /// The relationship and attributes go to stderr as one JSON line (or to
    /// `--attributes-out`). Exit 0 on success, 2 when the node routed to `failure`
    /// (the reason on stderr), 3 when the node could not be reached.
    Call(call::Args),
    /// The main job: generate a camera folder, run the shipped flow over it, summarise, then
    /// keep the dashboard up until Ctrl-C.
    ///
    /// `coils` (default) re-checks the camera's loose-wire flags with
    /// `flows/loose-wire-recheck.yaml`; `surfaces` finds steel-sheet defects with
    /// `flows/surface-defects.yaml`.
    Demo(demo::Args),
    /// Evaluate a model on a labelled folder through the serving code path.
    ///
    /// Classifiers (a `loupe synth coils` folder): confusion matrix, per-class precision and
    /// recall, loose_wire recall, share of the camera's false alarms cleared (per image and
    /// per product). Segmenters (a `loupe synth surfaces` folder): Dice and IoU per class,
    /// image-level AUROC. Then the comparison with the card's `metrics.test`. With `--flow`,
    /// the coil table under the flow's product policy; with `--fault`, all of it again under
    /// camera faults.
    Eval(eval::Args),
    /// Install the ONNX Runtime library into `.venv` (from the package index) if missing.
    Setup,
    /// Print the settings schema of a node type (JSON Schema).
    Schema(schema::Args),
    /// Generate deterministic synthetic inspection data (coil photos, steel surfaces).
    Synth {
        /// What to generate.
        #[command(subcommand)]
        what: synth::Command,
    },
    /// Training data from the report database: the images people reviewed in the dashboard.
    Dataset {
        /// What to do.
        #[command(subcommand)]
        what: dataset::Command,
    },
    /// Certificates and tokens for TLS, mutual TLS and bearer tokens: a CA, node and client
    /// certificates signed by it, random tokens.
    Certs {
        /// What to make.
        #[command(subcommand)]
        what: certs::Command,
    },
    /// Apache NiFi interop: the flow as a NiFi flow definition.
    Nifi {
        /// What to do.
        #[command(subcommand)]
        what: nifi::Command,
    },
    /// The dashboard's local users (argon2id hashes): add, remove, list.
    Users(users::Args),
}

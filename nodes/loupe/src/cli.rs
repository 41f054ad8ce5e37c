//! The command line.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

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
    Validate {
        /// Flow files (YAML).
        #[arg(required = true)]
        flows: Vec<PathBuf>,
    },
    /// Run a flow: host its in-process nodes, connect its remote ones, move FlowFiles.
    Run(crate::commands::run::Args),
    /// Serve one node type as its own gRPC process.
    Serve {
        /// Node type (`capture`, `classify`, `report`, ...).
        node_type: String,
        /// YAML configuration file (`listen`, `max_message_bytes`, `settings`, ...).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Address to listen on (overrides the configuration); port 0 picks a free port.
        #[arg(long)]
        listen: Option<String>,
        /// Override a configuration key, e.g. `--set settings.path=/tmp/r.jsonl`; the value
        /// takes the key's type from the node's settings schema (`--set settings.line=007`
        /// stays the text `007` where `line` is text).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
    },
    /// Print a running node's description (type, version, relationships, settings schema).
    Describe {
        /// The node's address, `host:port`, `http://host:port` or `https://host:port` (TLS).
        endpoint: String,
        /// TLS and credentials.
        #[command(flatten)]
        client: crate::commands::client_args::ClientArgs,
    },
    /// Send stdin as one FlowFile to a node; write the output content to stdout.
    ///
    /// The relationship and attributes go to stderr as one JSON line (or to
    /// `--attributes-out`). Exit 0 on success, 2 when the node routed to `failure`
    /// (the reason on stderr), 3 when the node could not be reached.
    Call {
        /// The node's address.
        endpoint: String,
        /// An attribute of the FlowFile sent, `key=value` (repeatable).
        #[arg(long = "attr", value_name = "KEY=VALUE")]
        attrs: Vec<String>,
        /// Write the outputs' relationships and attributes as JSON to this file (default:
        /// standard error, with `--output content`).
        #[arg(long)]
        attributes_out: Option<PathBuf>,
        /// What standard output carries: the outputs' `content` (NiFi ExecuteStreamCommand's
        /// output stream), or their relationships and attributes as one line of `json` (for
        /// ExecuteStreamCommand's "Output Destination Attribute").
        #[arg(long, value_enum, default_value_t = CallOutput::Content)]
        output: CallOutput,
        /// Seconds to wait for the answer.
        #[arg(long, default_value_t = 60)]
        timeout: u64,
        /// TLS and credentials.
        #[command(flatten)]
        client: crate::commands::client_args::ClientArgs,
    },
    /// The main job: generate a camera folder, run the shipped flow over it, summarise, then
    /// keep the dashboard up until Ctrl-C.
    ///
    /// `coils` (default) re-checks the camera's loose-wire flags with
    /// `flows/loose-wire-recheck.yaml`; `surfaces` finds steel-sheet defects with
    /// `flows/surface-defects.yaml`.
    Demo {
        /// Which demo.
        #[arg(value_enum, default_value_t = DemoKind::Coils)]
        kind: DemoKind,
        /// How many coils (8 photos each) or sheets to generate.
        #[arg(long, default_value_t = 50)]
        products: u32,
        /// Seed of the generated data.
        #[arg(long, default_value_t = 7)]
        seed: u64,
        /// The flow to run (default: the demo's shipped flow).
        #[arg(long)]
        flow: Option<PathBuf>,
        /// Stop after the summary instead of keeping the dashboard up.
        #[arg(long)]
        exit: bool,
    },
    /// Evaluate a model on a labelled folder through the serving code path.
    ///
    /// Classifiers (a `loupe synth coils` folder): confusion matrix, per-class precision and
    /// recall, loose_wire recall, share of the camera's false alarms cleared (per image and
    /// per product). Segmenters (a `loupe synth surfaces` folder): Dice and IoU per class,
    /// image-level AUROC. Then the comparison with the card's `metrics.test`. With `--flow`,
    /// the coil table under the flow's product policy; with `--fault`, all of it again under
    /// camera faults.
    Eval(crate::commands::eval::Args),
    /// Install the ONNX Runtime library into `.venv` (from the package index) if missing.
    Setup,
    /// Print the settings schema of a node type (JSON Schema).
    Schema {
        /// Node type.
        node_type: String,
    },
    /// Generate deterministic synthetic inspection data (coil photos, steel surfaces).
    Synth {
        /// What to generate.
        #[command(subcommand)]
        what: SynthCommand,
    },
    /// Training data from the report database: the images people reviewed in the dashboard.
    Dataset {
        /// What to do.
        #[command(subcommand)]
        what: DatasetCommand,
    },
    /// Certificates and tokens for TLS, mutual TLS and bearer tokens: a CA, node and client
    /// certificates signed by it, random tokens.
    Certs {
        /// What to make.
        #[command(subcommand)]
        what: crate::commands::certs::Command,
    },
    /// Apache NiFi interop: the flow as a NiFi flow definition.
    Nifi {
        /// What to do.
        #[command(subcommand)]
        what: NifiCommand,
    },
    /// The dashboard's local users (argon2id hashes): add, remove, list.
    Users(crate::commands::users::Args),
}

/// `loupe synth` subcommands.
#[derive(Debug, Subcommand)]
pub enum SynthCommand {
    /// Wire coils photographed from 8 angles: `ok`, `burr`, `loose_wire`, with the
    /// simulated factory camera's verdict per image.
    ///
    /// Writes DIR/images/<product>_a<angle>.<ext>, DIR/manifest.jsonl (one line per
    /// image) and DIR/dataset.json; prints the label counts and the camera's confusion.
    Coils {
        /// Number of products (8 images each).
        #[arg(long)]
        products: u32,
        /// Seed: the same arguments give byte-identical files.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Output directory (created; must be empty or an earlier synth output).
        #[arg(long)]
        out: PathBuf,
        /// Image width and height in pixels (64..=2048).
        #[arg(long, default_value_t = 256)]
        size: u32,
        /// Image format: png or jpg.
        #[arg(long, default_value = "png")]
        format: String,
        /// Fraction of products with a loose wire.
        #[arg(long, default_value_t = 0.05)]
        loose_wire: f64,
        /// Fraction of products with burrs.
        #[arg(long, default_value_t = 0.25)]
        burr: f64,
        /// Fraction of products with both (counted in the two above).
        #[arg(long, default_value_t = 0.01)]
        both: f64,
    },
    /// A copy of a labelled folder with a camera fault applied to every image (blur:S,
    /// jpeg:Q, exposure:F, noise:S, tilt:D, black, white, grey, static, small): the same
    /// manifest, the images as PNG under the same names, masks copied.
    Faults {
        /// The labelled folder (manifest.jsonl + images).
        #[arg(long)]
        data: PathBuf,
        /// The fault.
        #[arg(long)]
        fault: String,
        /// Output directory (created).
        #[arg(long)]
        out: PathBuf,
        /// Seed of the noise faults (image i of the manifest gets seed + i).
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Steel-sheet surfaces with scratches, pits, patches and inclusions, and a class
    /// mask per image.
    ///
    /// Writes DIR/images/<id>.png (8-bit gray), DIR/masks/<id>.png (pixel = class index:
    /// 0 background, 1 scratch, 2 pit, 3 patch, 4 inclusion), DIR/manifest.jsonl and
    /// DIR/dataset.json.
    Surfaces {
        /// Number of images.
        #[arg(long)]
        images: u32,
        /// Seed: the same arguments give byte-identical files.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Output directory (created; must be empty or an earlier synth output).
        #[arg(long)]
        out: PathBuf,
        /// Image width and height in pixels (64..=2048).
        #[arg(long, default_value_t = 256)]
        size: u32,
    },
}

/// `loupe dataset` subcommands.
#[derive(Debug, Subcommand)]
pub enum DatasetCommand {
    /// Export the reviewed images as a fine-tuning set: one folder per reviewed label.
    ///
    /// Takes every record whose latest review is at or after `--since` (UTC), labelled with
    /// that review's label, and writes DIR/<label>/<image> (a copy of the original from the
    /// media directory), DIR/manifest.jsonl (one line per image, sorted by file; `split`
    /// train or val, decided per product by a stable hash) and DIR/dataset.json (counts).
    /// Records without media, or whose image file is gone, are skipped and counted.
    Export {
        /// First day of reviews to take, `YYYY-MM-DD` (UTC, from the start of the day).
        #[arg(long)]
        since: String,
        /// Output directory (created; must be empty unless `--force`).
        #[arg(long)]
        out: PathBuf,
        /// Write into a non-empty DIR: an earlier export there is replaced, other files are
        /// left alone.
        #[arg(long)]
        force: bool,
        /// The flow whose report node holds the database, table and media directory.
        #[arg(long, default_value = "flows/loose-wire-recheck.yaml")]
        flow: PathBuf,
        /// The report node of the flow (default: the first one with a database).
        #[arg(long)]
        node: Option<String>,
        /// The database instead of the flow's: `sqlite:PATH` (relative to the working
        /// directory) or `postgres://USER@HOST/DB`; needs `--media`.
        #[arg(long, conflicts_with_all = ["flow", "node"], requires = "media")]
        database: Option<String>,
        /// The table of the records (default: the report node's, else `inspections`).
        #[arg(long)]
        table: Option<String>,
        /// The media directory instead of the report node's `media_dir`.
        #[arg(long)]
        media: Option<PathBuf>,
        /// Fraction of products put in the val split (0..=1).
        #[arg(long, default_value_t = 0.2)]
        val_fraction: f64,
    },
}

/// What `loupe call` writes to standard output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CallOutput {
    /// The output FlowFiles' content.
    Content,
    /// `{"outputs": [{"relationship", "uuid", "size", "attributes"}]}` on one line.
    Json,
}

/// `loupe nifi` subcommands.
#[derive(Debug, Subcommand)]
pub enum NifiCommand {
    /// Write a flow as a NiFi 2.x flow definition (JSON for "Upload flow definition").
    ///
    /// One process group named after the flow: an InvokeHTTP per processing node (calling
    /// the node's `POST /process` at the URL in parameter `loupe.<node-id>.url`), a
    /// RouteOnAttribute after nodes with named relationships (`route`), ListFile + FetchFile
    /// (or ListenHTTP) for the capture, and one connection per flow connection with its
    /// prioritizer and back pressure. The flow is validated first; an invalid flow is
    /// refused with its errors.
    Export {
        /// The flow file.
        flow: PathBuf,
        /// Write the JSON to this file instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// The demos of `loupe demo`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DemoKind {
    /// Coil photos: re-check the camera's loose-wire flags with the coil classifier.
    Coils,
    /// Steel-sheet photos: find and outline surface defects with the segmenter.
    Surfaces,
}

/// Progress display.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Progress {
    /// A live line on a terminal, plain lines otherwise.
    Auto,
    /// Plain lines.
    Lines,
    /// Nothing.
    Off,
}

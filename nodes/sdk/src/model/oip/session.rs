//! An ONNX Runtime session seen through the Open Inference Protocol: its tensors as metadata,
//! and raw request tensors run through it.

use std::sync::Mutex;

use bytes::Bytes;
use ort::session::Session;
use ort::value::{DynValue, Outlet, Tensor, TensorElementType};

use super::datatype::{DataType, RawTensor, le};
use super::pb::model_metadata_response::TensorMetadata;

/// Why running tensors through a session failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RunError {
    /// The request's tensors do not fit the model (names, datatypes, shapes, sizes).
    #[error("{0}")]
    InvalidInput(String),
    /// ONNX Runtime failed on tensors that fit the model.
    #[error("the model failed: {0}")]
    Model(String),
}

/// One tensor of the graph as the protocol describes it.
fn describe(outlet: &Outlet) -> TensorMetadata {
    let dtype = outlet.dtype();
    TensorMetadata {
        name: outlet.name().to_string(),
        datatype: dtype
            .tensor_type()
            .and_then(DataType::from_onnx)
            .map(|d| d.as_str().to_string())
            .unwrap_or_else(|| format!("{dtype}")),
        // ONNX Runtime reports dynamic (and symbolic) dimensions as -1, as the protocol does.
        shape: dtype
            .tensor_shape()
            .map(|s| s.iter().map(|d| if *d < 0 { -1 } else { *d }).collect())
            .unwrap_or_default(),
    }
}

/// The session's inputs and outputs as `ModelMetadata` lists them.
pub fn metadata(session: &Session) -> (Vec<TensorMetadata>, Vec<TensorMetadata>) {
    (
        session.inputs().iter().map(describe).collect(),
        session.outputs().iter().map(describe).collect(),
    )
}

/// Checks request tensors against the graph's inputs: every input given once and nothing else,
/// each with the graph's datatype, rank and fixed dimensions, and exactly its bytes.
pub fn check_inputs(graph: &[TensorMetadata], inputs: &[RawTensor]) -> Result<(), RunError> {
    let invalid = |m: String| Err(RunError::InvalidInput(m));
    let names = || graph.iter().map(|g| g.name.as_str()).collect::<Vec<_>>();
    for (i, tensor) in inputs.iter().enumerate() {
        if inputs[..i].iter().any(|t| t.name == tensor.name) {
            return invalid(format!("input {:?} is given twice", tensor.name));
        }
        let Some(expected) = graph.iter().find(|g| g.name == tensor.name) else {
            return invalid(format!(
                "the model has no input {:?} (its inputs: {:?})",
                tensor.name,
                names()
            ));
        };
        if tensor.datatype.as_str() != expected.datatype {
            return invalid(format!(
                "input {:?} is {} in the request but {} in the model",
                tensor.name, tensor.datatype, expected.datatype
            ));
        }
        let fits = tensor.shape.len() == expected.shape.len()
            && tensor
                .shape
                .iter()
                .zip(&expected.shape)
                .all(|(got, want)| *want < 0 || got == want);
        if !fits {
            return invalid(format!(
                "input {:?} has shape {:?}; the model takes {:?} (-1: any size)",
                tensor.name, tensor.shape, expected.shape
            ));
        }
        tensor.check_size().map_err(RunError::InvalidInput)?;
    }
    if let Some(missing) = graph
        .iter()
        .find(|g| !inputs.iter().any(|t| t.name == g.name))
    {
        return invalid(format!(
            "input {:?} is missing (the model takes {:?})",
            missing.name,
            names()
        ));
    }
    Ok(())
}

/// Runs checked raw tensors (see [`check_inputs`]) through the session and returns the named
/// outputs (all of them, in graph order, when `wanted` is empty) as raw tensors.
///
/// The session is the one the node serves with: a request here takes its turn with the node's
/// batches. Blocking: call it on the blocking pool.
pub fn run(
    session: &Mutex<Session>,
    inputs: Vec<RawTensor>,
    wanted: &[String],
) -> Result<Vec<RawTensor>, RunError> {
    let values = inputs
        .iter()
        .map(|t| to_value(t).map(|v| (t.name.clone(), v)))
        .collect::<Result<Vec<_>, _>>()?;
    let mut session = session
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let graph_outputs: Vec<String> = session
        .outputs()
        .iter()
        .map(|o| o.name().to_string())
        .collect();
    let names: Vec<String> = if wanted.is_empty() {
        graph_outputs.clone()
    } else {
        for name in wanted {
            if !graph_outputs.contains(name) {
                return Err(RunError::InvalidInput(format!(
                    "the model has no output {name:?} (its outputs: {graph_outputs:?})"
                )));
            }
        }
        wanted.to_vec()
    };
    let outputs = session
        .run(values)
        .map_err(|e| RunError::Model(e.to_string()))?;
    names
        .iter()
        .map(|name| {
            let value = outputs
                .get(name)
                .ok_or_else(|| RunError::Model(format!("no output {name:?} after the run")))?;
            from_value(name, value).map_err(RunError::Model)
        })
        .collect()
}

/// An ONNX Runtime tensor holding a raw tensor's elements.
fn to_value(tensor: &RawTensor) -> Result<DynValue, RunError> {
    macro_rules! typed {
        ($ty:ty, $n:literal, $from:expr) => {{
            let data: Vec<$ty> = tensor.data.chunks_exact($n).map($from).collect();
            Tensor::from_array((tensor.shape.clone(), data)).map(|t| t.into_dyn())
        }};
    }
    let built = match tensor.datatype {
        DataType::Bool => typed!(bool, 1, |c| c[0] != 0),
        DataType::Uint8 => typed!(u8, 1, |c| c[0]),
        DataType::Int8 => typed!(i8, 1, |c| i8::from_le_bytes(le(c))),
        DataType::Uint16 => typed!(u16, 2, |c| u16::from_le_bytes(le(c))),
        DataType::Int16 => typed!(i16, 2, |c| i16::from_le_bytes(le(c))),
        DataType::Uint32 => typed!(u32, 4, |c| u32::from_le_bytes(le(c))),
        DataType::Int32 => typed!(i32, 4, |c| i32::from_le_bytes(le(c))),
        DataType::Fp32 => typed!(f32, 4, |c| f32::from_le_bytes(le(c))),
        DataType::Uint64 => typed!(u64, 8, |c| u64::from_le_bytes(le(c))),
        DataType::Int64 => typed!(i64, 8, |c| i64::from_le_bytes(le(c))),
        DataType::Fp64 => typed!(f64, 8, |c| f64::from_le_bytes(le(c))),
        DataType::Fp16 | DataType::Bf16 | DataType::Bytes => {
            return Err(RunError::InvalidInput(format!(
                "input {:?} is {}: this server runs only BOOL, INT*, UINT*, FP32 and FP64 tensors",
                tensor.name, tensor.datatype
            )));
        }
    };
    built.map_err(|e| RunError::InvalidInput(format!("input {:?}: {e}", tensor.name)))
}

/// A session output as a raw tensor.
fn from_value(name: &str, value: &DynValue) -> Result<RawTensor, String> {
    let ty = value
        .dtype()
        .tensor_type()
        .ok_or_else(|| format!("output {name:?} is not a tensor ({})", value.dtype()))?;
    macro_rules! typed {
        ($ty:ty, $to:expr) => {{
            let (shape, values) = value
                .try_extract_tensor::<$ty>()
                .map_err(|e| format!("output {name:?}: {e}"))?;
            let data: Bytes = values.iter().flat_map($to).collect();
            (shape.to_vec(), data)
        }};
    }
    let (shape, data) = match ty {
        TensorElementType::Bool => typed!(bool, |v: &bool| [u8::from(*v)]),
        TensorElementType::Uint8 => typed!(u8, |v: &u8| [*v]),
        TensorElementType::Int8 => typed!(i8, |v: &i8| v.to_le_bytes()),
        TensorElementType::Uint16 => typed!(u16, |v: &u16| v.to_le_bytes()),
        TensorElementType::Int16 => typed!(i16, |v: &i16| v.to_le_bytes()),
        TensorElementType::Uint32 => typed!(u32, |v: &u32| v.to_le_bytes()),
        TensorElementType::Int32 => typed!(i32, |v: &i32| v.to_le_bytes()),
        TensorElementType::Float32 => typed!(f32, |v: &f32| v.to_le_bytes()),
        TensorElementType::Uint64 => typed!(u64, |v: &u64| v.to_le_bytes()),
        TensorElementType::Int64 => typed!(i64, |v: &i64| v.to_le_bytes()),
        TensorElementType::Float64 => typed!(f64, |v: &f64| v.to_le_bytes()),
        other => {
            return Err(format!(
                "output {name:?} is {other:?}: this server answers only BOOL, INT*, UINT*, \
                 FP32 and FP64 tensors"
            ));
        }
    };
    Ok(RawTensor {
        name: name.to_string(),
        datatype: DataType::from_onnx(ty).unwrap_or(DataType::Fp32),
        shape,
        data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph() -> Vec<TensorMetadata> {
        vec![TensorMetadata {
            name: "image".into(),
            datatype: "FP32".into(),
            shape: vec![-1, 3, 2, 2],
        }]
    }

    fn image(shape: Vec<i64>, values: usize) -> RawTensor {
        RawTensor::from_f32("image", shape, &vec![0.5; values])
    }

    #[test]
    fn inputs_are_checked_by_name_type_shape_and_size() {
        let g = graph();
        assert_eq!(check_inputs(&g, &[image(vec![2, 3, 2, 2], 24)]), Ok(()));
        let err = |inputs: &[RawTensor]| check_inputs(&g, inputs).unwrap_err().to_string();
        assert!(err(&[]).contains("\"image\" is missing"));
        let e = err(&[image(vec![1, 3, 4, 4], 48)]);
        assert!(
            e.contains("[1, 3, 4, 4]") && e.contains("[-1, 3, 2, 2]"),
            "{e}"
        );
        let e = err(&[image(vec![1, 3, 2, 2], 11)]);
        assert!(e.contains("44 bytes") && e.contains("needs 48"), "{e}");
        let mut other = image(vec![1, 3, 2, 2], 12);
        other.name = "x".into();
        assert!(err(&[other]).contains("no input \"x\""));
        let mut ints = image(vec![1, 3, 2, 2], 12);
        ints.datatype = DataType::Int32;
        assert!(err(&[ints]).contains("INT32 in the request but FP32"));
        let one = image(vec![1, 3, 2, 2], 12);
        assert!(err(&[one.clone(), one]).contains("twice"));
    }
}

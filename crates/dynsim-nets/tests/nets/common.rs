//! Loading the golden cases of `data/reference/nets/` (written by PyTorch / mambapy in float64;
//! the fields are described in that folder's README).

use std::collections::HashMap;

use dynsim_nets::{Activation, Arch, DType, Device, NetConfig, Network, Tensor};
use serde_json::Value;

pub struct Array {
    pub shape: Vec<usize>,
    pub data: Vec<f64>,
}

fn array(v: &Value) -> Array {
    let shape = v["shape"].as_array().expect("shape").iter().map(|d| d.as_u64().expect("dim") as usize).collect();
    let mut data = Vec::new();
    flatten(&v["data"], &mut data);
    let a = Array { shape, data };
    assert_eq!(a.data.len(), a.shape.iter().product::<usize>(), "array data matches its shape");
    a
}

fn flatten(v: &Value, out: &mut Vec<f64>) {
    match v {
        Value::Array(items) => items.iter().for_each(|i| flatten(i, out)),
        Value::Number(n) => out.push(n.as_f64().expect("number")),
        other => panic!("unexpected {other}"),
    }
}

pub struct Golden {
    pub config: NetConfig,
    pub l2: f64,
    pub input: Array,
    pub labels: Array,
    pub params: Vec<(String, Array)>,
    pub logits: Array,
    pub states: Array,
    pub cross_entropy: f64,
    pub l2_sum: f64,
    pub loss: f64,
    pub grads: HashMap<String, Array>,
}

pub fn golden(name: &str) -> Golden {
    let path = format!(
        "{}/../../data/reference/nets/{name}.json",
        std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_string())
    );
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&path).expect("fixture")).expect("json");
    let c = &v["config"];
    let config = match c["model"].as_str().expect("model") {
        "mamba" => {
            assert_eq!(c["d_state"], 16);
            assert_eq!(c["expand"], 2);
            assert_eq!(c["d_conv"], 4);
            let cfg =
                NetConfig::mamba(c["d_model"].as_u64().unwrap() as usize, c["n_layers"].as_u64().unwrap() as usize);
            assert_eq!(c["dt_rank"].as_u64().unwrap() as usize, cfg.dt_rank());
            cfg
        }
        m => {
            let mut cfg = NetConfig::recurrent(
                Arch::parse(m).expect("arch"),
                Activation::parse(c["activation"].as_str().unwrap()).expect("activation"),
                c["hidden"].as_u64().unwrap() as usize,
            );
            cfg.dt_ms = c["dt"].as_f64().unwrap();
            cfg.tau_ms = c["tau"].as_f64().unwrap();
            assert!((cfg.decay() - c["decay"].as_f64().unwrap()).abs() < 1e-15);
            cfg
        }
    };
    let params = v["params"].as_object().expect("params").iter().map(|(k, a)| (k.clone(), array(a))).collect();
    let e = &v["expected"];
    Golden {
        config,
        l2: v["l2"].as_f64().unwrap(),
        input: array(&v["input"]),
        labels: array(&v["labels"]),
        params,
        logits: array(&e["logits"]),
        states: array(&e["states"]),
        cross_entropy: e["cross_entropy"].as_f64().unwrap(),
        l2_sum: e["l2_sum_frobenius"].as_f64().unwrap(),
        loss: e["loss"].as_f64().unwrap(),
        grads: e["grads"].as_object().unwrap().iter().map(|(k, a)| (k.clone(), array(a))).collect(),
    }
}

pub const CASES: [&str; 3] = ["leaky_rnn_relu_h12", "leaky_gru_softplus_h12", "mamba_d8_l2"];

impl Golden {
    pub fn network(&self, dtype: DType, fused: bool) -> Network {
        let tensors: HashMap<String, Tensor> = self
            .params
            .iter()
            .map(|(k, a)| (k.clone(), Tensor::from_vec(a.data.clone(), a.shape.as_slice(), &Device::Cpu).unwrap()))
            .collect();
        let mut net =
            Network::from_tensors(self.config.clone(), &tensors, dtype, &Device::Cpu).expect("golden params load");
        net.set_fused(fused);
        net
    }

    pub fn input(&self) -> Tensor {
        Tensor::from_vec(self.input.data.clone(), self.input.shape.as_slice(), &Device::Cpu).unwrap()
    }

    pub fn labels(&self) -> Tensor {
        let l: Vec<u32> = self.labels.data.iter().map(|&x| x as u32).collect();
        Tensor::from_vec(l, self.labels.shape.as_slice(), &Device::Cpu).unwrap()
    }
}

/// Values of a tensor as f64, row-major.
pub fn values(t: &Tensor) -> Vec<f64> {
    t.to_dtype(DType::F64).unwrap().flatten_all().unwrap().to_vec1::<f64>().unwrap()
}

/// max |a − b| / max |b|: the error relative to the reference's scale.
pub fn rel_err(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len(), "lengths");
    let scale = b.iter().fold(f64::MIN_POSITIVE, |m, x| m.max(x.abs()));
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max) / scale
}

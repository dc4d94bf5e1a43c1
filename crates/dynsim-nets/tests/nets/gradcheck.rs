//! Gradients by central finite differences in f64, for all three models; and the fused CPU ops
//! against the composition of candle ops on random networks of every activation and shape.

use crate::common::{rel_err, values};
use dynsim_nets::{Activation, Arch, DType, Device, NetConfig, Network, Tensor};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

fn data(seed: u64, b: usize, t: usize) -> (Tensor, Tensor) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let x: Vec<f64> = (0..b * t * 7).map(|_| rng.sample::<f64, _>(StandardNormal)).collect();
    let y: Vec<u32> = (0..b * t).map(|_| rng.random_range(0..3u32)).collect();
    (Tensor::from_vec(x, (b, t, 7), &Device::Cpu).unwrap(), Tensor::from_vec(y, (b, t), &Device::Cpu).unwrap())
}

fn loss(net: &Network, x: &Tensor, y: &Tensor) -> Tensor {
    let out = net.forward(x, false).unwrap();
    net.loss(&out.logits, y, 1e-4).unwrap().0
}

fn finite_differences(config: NetConfig, fused: bool) {
    let mut net = Network::init(config.clone(), 11, DType::F64, &Device::Cpu).unwrap();
    net.set_fused(fused);
    let (x, y) = data(5, 2, 9);
    let grads = loss(&net, &x, &y).backward().unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(99);
    let eps = 1e-5;
    let mut checked = 0;
    for (name, var) in net.params() {
        let analytic = values(grads.get(var.as_tensor()).expect("gradient"));
        let original = var.as_tensor().copy().unwrap();
        let base = values(&original);
        for _ in 0..4 {
            let k = rng.random_range(0..base.len());
            let at = |delta: f64| {
                let mut v = base.clone();
                v[k] += delta;
                var.set(&Tensor::from_vec(v, original.dims(), &Device::Cpu).unwrap()).unwrap();
                values(&loss(&net, &x, &y))[0]
            };
            let fd = (at(eps) - at(-eps)) / (2.0 * eps);
            var.set(&original).unwrap();
            let an = analytic[k];
            assert!(
                (fd - an).abs() <= 1e-7 + 1e-5 * an.abs(),
                "{} fused={fused}: ∂L/∂{name}[{k}] analytic {an:e}, finite differences {fd:e}",
                config.arch.name()
            );
            checked += 1;
        }
    }
    assert!(checked >= 16);
}

#[test]
fn leaky_rnn_gradients_match_finite_differences() {
    for fused in [true, false] {
        finite_differences(NetConfig::recurrent(Arch::LeakyRnn, Activation::Tanh, 6), fused);
        finite_differences(NetConfig::recurrent(Arch::LeakyRnn, Activation::Softplus, 5), fused);
    }
}

#[test]
fn leaky_gru_gradients_match_finite_differences() {
    for fused in [true, false] {
        finite_differences(NetConfig::recurrent(Arch::LeakyGru, Activation::Tanh, 6), fused);
        finite_differences(NetConfig::recurrent(Arch::LeakyGru, Activation::Softplus, 5), fused);
    }
}

#[test]
fn mamba_gradients_match_finite_differences() {
    for fused in [true, false] {
        // d_model 20: Δ rank 2, so dt_proj is a real product.
        finite_differences(NetConfig::mamba(4, 2), fused);
        finite_differences(NetConfig::mamba(20, 1), fused);
    }
}

/// The fused ops and the composed candle ops are two independent implementations: they agree on
/// logits, states and every gradient for every activation, both recurrent architectures and
/// Mamba shapes, in f64.
#[test]
fn fused_and_composed_agree() {
    let mut configs = Vec::new();
    for arch in [Arch::LeakyRnn, Arch::LeakyGru] {
        for act in Activation::ALL {
            configs.push(NetConfig::recurrent(arch, act, 9));
        }
    }
    configs.push(NetConfig::mamba(8, 1));
    configs.push(NetConfig::mamba(20, 2));
    for (i, config) in configs.into_iter().enumerate() {
        let (x, y) = data(i as u64, 3, 17);
        let mut results = Vec::new();
        for fused in [true, false] {
            let mut net = Network::init(config.clone(), 3, DType::F64, &Device::Cpu).unwrap();
            net.set_fused(fused);
            let out = net.forward(&x, true).unwrap();
            let (l, _, _) = net.loss(&out.logits, &y, 1e-4).unwrap();
            let grads = l.backward().unwrap();
            let g: Vec<Vec<f64>> =
                net.params().iter().map(|(_, v)| values(grads.get(v.as_tensor()).unwrap())).collect();
            results.push((values(&out.logits), values(&out.states.unwrap()), g));
        }
        let what = format!("{} {}", config.arch.name(), config.activation.name());
        assert!(rel_err(&results[0].0, &results[1].0) < 1e-12, "{what}: logits");
        assert!(rel_err(&results[0].1, &results[1].1) < 1e-12, "{what}: states");
        for (a, b) in results[0].2.iter().zip(&results[1].2) {
            assert!(rel_err(a, b) < 1e-10, "{what}: gradients differ by {:e}", rel_err(a, b));
        }
    }
}

//! Reduced precision: the GPU's loss scaling, exercised on the CPU, and the
//! CPU's own bfloat16 autocast.

use tch::{Device, Kind, Tensor};
use twinsim_learn::train::optimizer::Optimizer;
use twinsim_learn::train::precision::{cpu_has_bf16, Half, Precision};

#[test]
fn the_scale_halves_on_overflow_and_doubles_after_a_run_of_good_steps() {
    let mut p = Precision::scaled(Some(Half::Float16), 8.0);
    assert!(!p.update(false), "an overflowing step must be skipped");
    assert_eq!(p.scale, 4.0);
    for _ in 0..1999 {
        assert!(p.update(true));
    }
    assert_eq!(p.scale, 4.0);
    assert!(p.update(true));
    assert_eq!(p.scale, 8.0);
}

#[test]
fn unscaling_restores_gradients_and_spots_overflow() {
    let w = Tensor::ones([3], (Kind::Float, Device::Cpu)).set_requires_grad(true);
    let mut opt = Optimizer::new("sgd", vec![("w".into(), w.shallow_clone())], 0.0).unwrap();
    (&w * 2.0 * 1024.0).sum(Kind::Float).backward();
    assert!(opt.unscale(1024.0));
    assert_eq!(Vec::<f32>::try_from(w.grad()).unwrap(), [2.0, 2.0, 2.0]);
    opt.zero_grad();
    (&w * f64::from(f32::MAX) * 4.0).sum(Kind::Float).backward();
    assert!(!opt.unscale(2.0), "infinite gradients must be reported");
}

#[test]
fn the_cpu_refuses_fp16_and_auto_is_bf16_where_the_cpu_computes_it() {
    assert!(Precision::new("fp16", Device::Cpu).is_err());
    assert!(Precision::new("bf17", Device::Cpu).is_err());
    let auto = Precision::new("auto", Device::Cpu).unwrap();
    assert_eq!(auto.is_cpu_bf16(), cpu_has_bf16());
    assert!(!auto.is_scaling() && auto.scale == 1.0);
    let fp32 = Precision::new("fp32", Device::Cpu).unwrap();
    assert!(!fp32.autocast && fp32.name() == "fp32");
    assert_eq!(Precision::new("bf16", Device::Cpu).unwrap().name(), "bf16");
    // The digits recipe's: float32 on any CPU, bf16 on a GPU.
    assert_eq!(Precision::new("auto-gpu", Device::Cpu).unwrap().name(), "fp32");
    assert_eq!(
        Precision::new("auto-gpu", Device::Cuda(0)).unwrap().name(),
        "bf16"
    );
}

/// bf16 on the CPU computes a convolution in bfloat16 inside `enter` only,
/// and leaves autocast as it found it.
#[test]
fn cpu_bf16_casts_inside_enter_only() {
    let p = Precision::new("bf16", Device::Cpu).unwrap();
    assert!(p.is_cpu_bf16() && !p.is_scaling());
    let x = Tensor::ones([1, 2, 5, 5], (Kind::Float, Device::Cpu));
    let w = Tensor::ones([3, 2, 3, 3], (Kind::Float, Device::Cpu));
    let conv = || x.conv2d(&w, None::<Tensor>, [1], [0], [1], 1);
    let inside = p.enter(conv);
    assert_eq!(inside.kind(), Kind::BFloat16);
    assert_eq!(inside.to_kind(Kind::Float).double_value(&[0, 0, 0, 0]), 18.0);
    assert_eq!(conv().kind(), Kind::Float);
    assert_eq!(p.enter(|| p.enter(conv)).kind(), Kind::BFloat16);
    assert_eq!(conv().kind(), Kind::Float);
    let fp32 = Precision::new("fp32", Device::Cpu).unwrap();
    assert_eq!(fp32.enter(conv).kind(), Kind::Float);
}

#[test]
fn a_gpu_gets_bf16_without_loss_scaling_unless_fp16_is_asked_for() {
    // Resolving a precision touches no device.
    let cuda = Device::Cuda(0);
    let auto = Precision::new("auto", cuda).unwrap();
    assert!(auto.autocast && !auto.is_scaling() && auto.half == Half::BFloat16);
    let fp16 = Precision::new("fp16", cuda).unwrap();
    assert!(fp16.autocast && fp16.is_scaling() && fp16.half == Half::Float16);
}

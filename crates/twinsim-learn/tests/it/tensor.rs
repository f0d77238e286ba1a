//! Datasets become tensors in one copy, with their shape and values intact.

use tch::{Device, Kind};
use twinsim_data::{sample, SplitName};
use twinsim_learn::{images_tensor, labels_tensor};

#[test]
fn embedded_mnist_becomes_an_nchw_uint8_tensor() {
    let ds = sample::load(SplitName::Test).unwrap();
    let x = images_tensor(&ds.images, Device::Cpu);
    assert_eq!(x.size(), vec![2000, 1, 28, 28]);
    assert_eq!(x.kind(), Kind::Uint8);
    let bytes_sum: i64 = ds.images.as_bytes().iter().map(|&b| i64::from(b)).sum();
    assert_eq!(x.sum(Kind::Int64).int64_value(&[]), bytes_sum);
    // Pixel (image 7, row 14, column 10) lands where NCHW says it should.
    let img = ds.images.image(7);
    assert_eq!(x.int64_value(&[7, 0, 14, 10]), i64::from(img[14 * 28 + 10]));
    let y = labels_tensor(&ds.labels, Device::Cpu);
    assert_eq!(y.size(), vec![2000]);
    assert_eq!(y.int64_value(&[0]), i64::from(ds.labels[0]));
}

#[test]
fn devices_parse_and_missing_gpus_are_explained() {
    assert_eq!(twinsim_learn::parse_device("cpu").unwrap(), Device::Cpu);
    assert!(twinsim_learn::parse_device("tpu")
        .unwrap_err()
        .contains("unknown device"));
    if twinsim_learn::device::cuda_device_count() == 0 {
        let err = twinsim_learn::parse_device("cuda").unwrap_err();
        assert!(err.contains("no CUDA GPU"), "{err}");
        assert_eq!(twinsim_learn::parse_device("auto").unwrap(), Device::Cpu);
    }
}

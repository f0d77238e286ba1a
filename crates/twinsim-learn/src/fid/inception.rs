//! Inception-v3 as FID is defined on it: the network of pytorch-fid's
//! `FIDInceptionA/C/E` variant of torchvision's `Inception3` (the port of
//! the TensorFlow graph the FID paper used), up to its 2048-d global
//! average pool. Its variables carry the names of that state dict
//! (`Conv2d_1a_3x3.conv.weight`, `Mixed_5b.branch1x1.bn.running_mean`, …),
//! so the standard weights file (`pt_inception-2015-12-05-6726825d.pth`,
//! or the same tensors as safetensors) loads into it unchanged. No weights
//! ship with twinsim and none are downloaded: the user names the file.
//!
//! Input: (B, 3, 299, 299) uint8; scaled to [-1, 1] as pytorch-fid does.
//! Resizing to 299×299 happens before, on uint8 images ([`resize`]).

use std::path::{Path, PathBuf};

use image::imageops::{self, FilterType};
use image::{GrayImage, RgbImage};
use indicatif::ProgressBar;
use rayon::prelude::*;
use tch::nn::{self, Init};
use tch::{Device, Kind, Tensor};
use twinsim_data::folder::{self, Filter, FolderOptions, SkipReason};
use twinsim_data::{ImageShape, Images};

use crate::{LearnError, Result};

/// Width of the pooled features.
pub const FEATURES: i64 = 2048;
/// Height and width of the network's input.
pub const SIDE: u32 = 299;
/// Batch-norm epsilon of the TensorFlow graph.
const BN_EPS: f64 = 1e-3;
/// Images resized and embedded at a time: 64 at 299×299 are 17 MB of
/// input, and the network's activations for them a few hundred MB.
const BATCH: usize = 64;

/// Variables of the standard weights file that the pool features do not
/// use: the 1008-way classifier, the auxiliary head, batch-norm counters.
fn unused(name: &str) -> bool {
    name.starts_with("fc.") || name.starts_with("AuxLogits.") || name.ends_with(".num_batches_tracked")
}

/// A convolution without bias, batch norm (inference) and ReLU, named
/// `<name>.conv.weight`, `<name>.bn.{weight,bias,running_mean,running_var}`.
#[derive(Debug)]
struct BasicConv {
    weight: Tensor,
    scale: Tensor,
    shift: Tensor,
    mean: Tensor,
    var: Tensor,
    stride: i64,
    padding: [i64; 2],
}

/// Creates variables under `root` and records their names in creation
/// order, so a weights file can be checked in the network's own order.
struct Builder<'a> {
    root: nn::Path<'a>,
    names: Vec<String>,
}

impl Builder<'_> {
    /// Variable `name` (dotted: each part but the last is a sub-path, as
    /// tch joins them back in [`nn::VarStore::variables`]).
    fn var(&mut self, name: String, shape: &[i64], init: Init) -> Tensor {
        let (path, leaf) = name.rsplit_once('.').expect("variable names are dotted");
        let parent = path.split('.').fold(self.root.clone(), |p, part| p / part);
        let t = parent.var(leaf, shape, init);
        self.names.push(name);
        t
    }

    /// `name`: c_in → c_out with a (kh, kw) kernel, `stride`, `padding`.
    fn conv(
        &mut self,
        name: &str,
        c_in: i64,
        c_out: i64,
        kernel: [i64; 2],
        stride: i64,
        padding: [i64; 2],
    ) -> BasicConv {
        let fan_in = (c_in * kernel[0] * kernel[1]) as f64;
        let weight = self.var(
            format!("{name}.conv.weight"),
            &[c_out, c_in, kernel[0], kernel[1]],
            Init::Randn {
                mean: 0.0,
                stdev: (2.0 / fan_in).sqrt(),
            },
        );
        let bn = |b: &mut Self, v: &str, init| b.var(format!("{name}.bn.{v}"), &[c_out], init);
        BasicConv {
            weight,
            scale: bn(self, "weight", Init::Const(1.0)),
            shift: bn(self, "bias", Init::Const(0.0)),
            mean: bn(self, "running_mean", Init::Const(0.0)),
            var: bn(self, "running_var", Init::Const(1.0)),
            stride,
            padding,
        }
    }

    /// A square `k`×`k` convolution with padding `p` and stride 1.
    fn square(&mut self, name: &str, c_in: i64, c_out: i64, k: i64, p: i64) -> BasicConv {
        self.conv(name, c_in, c_out, [k, k], 1, [p, p])
    }
}

impl BasicConv {
    fn forward(&self, x: &Tensor) -> Tensor {
        x.conv2d(&self.weight, None::<Tensor>, [self.stride], self.padding, [1], 1)
            .batch_norm(
                Some(&self.scale),
                Some(&self.shift),
                Some(&self.mean),
                Some(&self.var),
                false,
                0.0,
                BN_EPS,
                true,
            )
            .relu()
    }
}

/// 3×3 average pooling, stride 1, padding 1, not counting the padding (FID's variant).
fn avg_pool(x: &Tensor) -> Tensor {
    x.avg_pool2d([3, 3], [1, 1], [1, 1], false, false, None)
}

/// 3×3 max pooling with `stride` and `padding`.
fn max_pool(x: &Tensor, stride: i64, padding: i64) -> Tensor {
    x.max_pool2d([3, 3], [stride, stride], [padding, padding], [1, 1], false)
}

/// Mixed_5b/5c/5d: (B, C, 35, 35) → (B, 224 + pool, 35, 35).
#[derive(Debug)]
struct BlockA {
    b1: BasicConv,
    b5: [BasicConv; 2],
    b3: [BasicConv; 3],
    pool: BasicConv,
}

impl BlockA {
    fn new(b: &mut Builder, n: &str, c: i64, pool: i64) -> BlockA {
        BlockA {
            b1: b.square(&format!("{n}.branch1x1"), c, 64, 1, 0),
            b5: [
                b.square(&format!("{n}.branch5x5_1"), c, 48, 1, 0),
                b.square(&format!("{n}.branch5x5_2"), 48, 64, 5, 2),
            ],
            b3: [
                b.square(&format!("{n}.branch3x3dbl_1"), c, 64, 1, 0),
                b.square(&format!("{n}.branch3x3dbl_2"), 64, 96, 3, 1),
                b.square(&format!("{n}.branch3x3dbl_3"), 96, 96, 3, 1),
            ],
            pool: b.square(&format!("{n}.branch_pool"), c, pool, 1, 0),
        }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        Tensor::cat(
            &[
                self.b1.forward(x),
                chain(&self.b5, x),
                chain(&self.b3, x),
                self.pool.forward(&avg_pool(x)),
            ],
            1,
        )
    }
}

/// Mixed_6a: (B, 288, 35, 35) → (B, 768, 17, 17).
#[derive(Debug)]
struct BlockB {
    b3: BasicConv,
    dbl: [BasicConv; 3],
}

impl BlockB {
    fn new(b: &mut Builder, n: &str, c: i64) -> BlockB {
        BlockB {
            b3: b.conv(&format!("{n}.branch3x3"), c, 384, [3, 3], 2, [0, 0]),
            dbl: [
                b.square(&format!("{n}.branch3x3dbl_1"), c, 64, 1, 0),
                b.square(&format!("{n}.branch3x3dbl_2"), 64, 96, 3, 1),
                b.conv(&format!("{n}.branch3x3dbl_3"), 96, 96, [3, 3], 2, [0, 0]),
            ],
        }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        Tensor::cat(&[self.b3.forward(x), chain(&self.dbl, x), max_pool(x, 2, 0)], 1)
    }
}

/// Mixed_6b-6e: (B, 768, 17, 17) → (B, 768, 17, 17), factorised 7×7
/// convolutions of `c7` channels.
#[derive(Debug)]
struct BlockC {
    b1: BasicConv,
    b7: [BasicConv; 3],
    dbl: [BasicConv; 5],
    pool: BasicConv,
}

impl BlockC {
    fn new(b: &mut Builder, n: &str, c: i64, c7: i64) -> BlockC {
        let row = |b: &mut Builder, s: &str, i, o| b.conv(&format!("{n}.{s}"), i, o, [1, 7], 1, [0, 3]);
        let col = |b: &mut Builder, s: &str, i, o| b.conv(&format!("{n}.{s}"), i, o, [7, 1], 1, [3, 0]);
        BlockC {
            b1: b.square(&format!("{n}.branch1x1"), c, 192, 1, 0),
            b7: [
                b.square(&format!("{n}.branch7x7_1"), c, c7, 1, 0),
                row(b, "branch7x7_2", c7, c7),
                col(b, "branch7x7_3", c7, 192),
            ],
            dbl: [
                b.square(&format!("{n}.branch7x7dbl_1"), c, c7, 1, 0),
                col(b, "branch7x7dbl_2", c7, c7),
                row(b, "branch7x7dbl_3", c7, c7),
                col(b, "branch7x7dbl_4", c7, c7),
                row(b, "branch7x7dbl_5", c7, 192),
            ],
            pool: b.square(&format!("{n}.branch_pool"), c, 192, 1, 0),
        }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        Tensor::cat(
            &[
                self.b1.forward(x),
                chain(&self.b7, x),
                chain(&self.dbl, x),
                self.pool.forward(&avg_pool(x)),
            ],
            1,
        )
    }
}

/// Mixed_7a: (B, 768, 17, 17) → (B, 1280, 8, 8).
#[derive(Debug)]
struct BlockD {
    b3: [BasicConv; 2],
    b7: [BasicConv; 4],
}

impl BlockD {
    fn new(b: &mut Builder, n: &str, c: i64) -> BlockD {
        BlockD {
            b3: [
                b.square(&format!("{n}.branch3x3_1"), c, 192, 1, 0),
                b.conv(&format!("{n}.branch3x3_2"), 192, 320, [3, 3], 2, [0, 0]),
            ],
            b7: [
                b.square(&format!("{n}.branch7x7x3_1"), c, 192, 1, 0),
                b.conv(&format!("{n}.branch7x7x3_2"), 192, 192, [1, 7], 1, [0, 3]),
                b.conv(&format!("{n}.branch7x7x3_3"), 192, 192, [7, 1], 1, [3, 0]),
                b.conv(&format!("{n}.branch7x7x3_4"), 192, 192, [3, 3], 2, [0, 0]),
            ],
        }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        Tensor::cat(&[chain(&self.b3, x), chain(&self.b7, x), max_pool(x, 2, 0)], 1)
    }
}

/// Mixed_7b/7c: (B, C, 8, 8) → (B, 2048, 8, 8); the pooling branch
/// averages in 7b and takes the maximum in 7c (FID's variant).
#[derive(Debug)]
struct BlockE {
    b1: BasicConv,
    b3: BasicConv,
    b3_split: [BasicConv; 2],
    dbl: [BasicConv; 2],
    dbl_split: [BasicConv; 2],
    pool: BasicConv,
    max: bool,
}

impl BlockE {
    fn new(b: &mut Builder, n: &str, c: i64, max: bool) -> BlockE {
        let row = |b: &mut Builder, s: &str| b.conv(&format!("{n}.{s}"), 384, 384, [1, 3], 1, [0, 1]);
        let col = |b: &mut Builder, s: &str| b.conv(&format!("{n}.{s}"), 384, 384, [3, 1], 1, [1, 0]);
        BlockE {
            b1: b.square(&format!("{n}.branch1x1"), c, 320, 1, 0),
            b3: b.square(&format!("{n}.branch3x3_1"), c, 384, 1, 0),
            b3_split: [row(b, "branch3x3_2a"), col(b, "branch3x3_2b")],
            dbl: [
                b.square(&format!("{n}.branch3x3dbl_1"), c, 448, 1, 0),
                b.square(&format!("{n}.branch3x3dbl_2"), 448, 384, 3, 1),
            ],
            dbl_split: [row(b, "branch3x3dbl_3a"), col(b, "branch3x3dbl_3b")],
            pool: b.square(&format!("{n}.branch_pool"), c, 192, 1, 0),
            max,
        }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        let split =
            |convs: &[BasicConv; 2], h: &Tensor| Tensor::cat(&[convs[0].forward(h), convs[1].forward(h)], 1);
        let b3 = self.b3.forward(x);
        let dbl = chain(&self.dbl, x);
        let pooled = if self.max { max_pool(x, 1, 1) } else { avg_pool(x) };
        Tensor::cat(
            &[
                self.b1.forward(x),
                split(&self.b3_split, &b3),
                split(&self.dbl_split, &dbl),
                self.pool.forward(&pooled),
            ],
            1,
        )
    }
}

/// `convs` applied one after the other to `x`.
fn chain(convs: &[BasicConv], x: &Tensor) -> Tensor {
    convs.iter().fold(x.shallow_clone(), |h, c| c.forward(&h))
}

/// The FID Inception-v3 with its variables; see the [module documentation](self).
pub struct Inception {
    vs: nn::VarStore,
    /// Variable names in the network's order.
    names: Vec<String>,
    stem: [BasicConv; 5],
    a: [BlockA; 3],
    b: BlockB,
    c: [BlockC; 4],
    d: BlockD,
    e: [BlockE; 2],
}

impl Inception {
    /// The network with random weights (batch norm as the identity), on `device`.
    pub fn new(device: Device) -> Inception {
        let vs = nn::VarStore::new(device);
        let mut b = Builder {
            root: vs.root(),
            names: Vec::new(),
        };
        let stem = [
            b.conv("Conv2d_1a_3x3", 3, 32, [3, 3], 2, [0, 0]),
            b.square("Conv2d_2a_3x3", 32, 32, 3, 0),
            b.square("Conv2d_2b_3x3", 32, 64, 3, 1),
            b.square("Conv2d_3b_1x1", 64, 80, 1, 0),
            b.square("Conv2d_4a_3x3", 80, 192, 3, 0),
        ];
        let a = [
            BlockA::new(&mut b, "Mixed_5b", 192, 32),
            BlockA::new(&mut b, "Mixed_5c", 256, 64),
            BlockA::new(&mut b, "Mixed_5d", 288, 64),
        ];
        let block_b = BlockB::new(&mut b, "Mixed_6a", 288);
        let c = [
            BlockC::new(&mut b, "Mixed_6b", 768, 128),
            BlockC::new(&mut b, "Mixed_6c", 768, 160),
            BlockC::new(&mut b, "Mixed_6d", 768, 160),
            BlockC::new(&mut b, "Mixed_6e", 768, 192),
        ];
        let d = BlockD::new(&mut b, "Mixed_7a", 768);
        let e = [
            BlockE::new(&mut b, "Mixed_7b", 1280, false),
            BlockE::new(&mut b, "Mixed_7c", 2048, true),
        ];
        let names = b.names;
        let mut vs = vs;
        vs.freeze();
        Inception {
            vs,
            names,
            stem,
            a,
            b: block_b,
            c,
            d,
            e,
        }
    }

    /// The network with the weights in `path`: safetensors, or a PyTorch
    /// state dict (`.pth`, read without executing anything). The file must
    /// hold every variable with its shape (extra classifier, auxiliary-head
    /// and counter entries are ignored); the error names the first one
    /// that does not fit.
    pub fn load(path: &Path, device: Device) -> Result<Inception> {
        let net = Inception::new(device);
        let tensors = read(path)?;
        net.fill(&tensors).map_err(|reason| bad_weights(path, reason))?;
        Ok(net)
    }

    /// Copies `tensors` into the variables after checking them all, in the
    /// network's order; the error is the reason.
    fn fill(&self, tensors: &[(String, Tensor)]) -> std::result::Result<(), String> {
        let vars = self.vs.variables();
        let given: std::collections::HashMap<&str, &Tensor> =
            tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
        for name in &self.names {
            let want = vars[name].size();
            match given.get(name.as_str()) {
                None => return Err(format!("the first mismatched key is {name}: missing")),
                Some(t) if t.size() != want => {
                    return Err(format!(
                        "the first mismatched key is {name}: shape {:?}, Inception-v3 needs {want:?}",
                        t.size()
                    ))
                }
                Some(_) => {}
            }
        }
        let mut unknown: Vec<&str> = given
            .keys()
            .copied()
            .filter(|n| !vars.contains_key(*n) && !unused(n))
            .collect();
        unknown.sort_unstable();
        if let Some(name) = unknown.first() {
            return Err(format!(
                "the first mismatched key is {name}: not a variable of Inception-v3"
            ));
        }
        tch::no_grad(|| {
            for name in &self.names {
                let t = given[name.as_str()].to_kind(Kind::Float);
                if t.isfinite().all().int64_value(&[]) == 0 {
                    return Err(format!("{name} holds values that are not finite"));
                }
                vars[name].shallow_clone().copy_(&t);
            }
            Ok(())
        })
    }

    /// uint8 (B, 3, 299, 299) on any device → pool features (B, 2048)
    /// float32 on the CPU, without gradients.
    pub fn features(&self, images_u8: &Tensor) -> Tensor {
        let _guard = tch::no_grad_guard();
        let x = images_u8.to_device(self.vs.device()).to_kind(Kind::Float) / 127.5 - 1.0;
        let mut h = chain(&self.stem[..3], &x);
        h = max_pool(&h, 2, 0);
        h = chain(&self.stem[3..], &h);
        h = max_pool(&h, 2, 0);
        for block in &self.a {
            h = block.forward(&h);
        }
        h = self.b.forward(&h);
        for block in &self.c {
            h = block.forward(&h);
        }
        h = self.d.forward(&h);
        for block in &self.e {
            h = block.forward(&h);
        }
        h.mean_dim([2i64, 3].as_slice(), false, Kind::Float)
            .to_device(Device::Cpu)
    }

    /// The pool features (N, 2048) of `images` (any size, grey or colour),
    /// resized ([`resize`]) and embedded [`BATCH`] at a time; `bar`
    /// advances by each batch.
    pub fn embed(&self, images: &Images, bar: &ProgressBar) -> Tensor {
        let parts: Vec<Tensor> = (0..images.len())
            .step_by(BATCH)
            .map(|start| {
                let chosen: Vec<usize> = (start..(start + BATCH).min(images.len())).collect();
                let out = self.features(&resize(&images.select(&chosen)));
                bar.inc(chosen.len() as u64);
                out
            })
            .collect();
        cat_rows(parts)
    }

    /// The pool features of the image files `paths`, decoded and resized
    /// straight to the input size, [`BATCH`] at a time (all at once they
    /// would take 268 KB of memory each); also the files that are not
    /// usable images, with why, which are left out.
    pub fn embed_files(&self, paths: &[PathBuf], bar: &ProgressBar) -> (Tensor, Vec<(PathBuf, SkipReason)>) {
        let opts = input_options();
        let mut skipped = Vec::new();
        let mut parts = Vec::new();
        for chunk in paths.chunks(BATCH) {
            let decoded: Vec<_> = chunk.par_iter().map(|p| folder::decode_file(p, &opts)).collect();
            let mut pixels = Vec::new();
            for (path, image) in chunk.iter().zip(decoded) {
                match image {
                    Ok(p) => pixels.extend(p),
                    Err(reason) => skipped.push((path.clone(), reason)),
                }
            }
            let n = (pixels.len() / opts.shape().len()) as i64;
            if n > 0 {
                let side = i64::from(SIDE);
                parts.push(self.features(&Tensor::from_slice(&pixels).view([n, 3, side, side])));
            }
            bar.inc(chunk.len() as u64);
        }
        (cat_rows(parts), skipped)
    }

    /// Every variable's name and shape, in the network's order.
    pub fn layout(&self) -> Vec<(String, Vec<i64>)> {
        let vars = self.vs.variables();
        self.names.iter().map(|n| (n.clone(), vars[n].size())).collect()
    }
}

/// Feature rows of batches as one (N, 2048) tensor; (0, 2048) for none.
fn cat_rows(parts: Vec<Tensor>) -> Tensor {
    if parts.is_empty() {
        return Tensor::zeros([0, FEATURES], (Kind::Float, Device::Cpu));
    }
    Tensor::cat(&parts, 0)
}

/// How image files become the network's input: RGB, 299×299, bicubic, not cached.
fn input_options() -> FolderOptions {
    FolderOptions {
        channels: 3,
        height: SIDE as usize,
        width: SIDE as usize,
        cache_dir: None,
        filter: Filter::Bicubic,
        ..FolderOptions::default()
    }
}

/// A weights file that cannot be the FID Inception's.
fn bad_weights(path: &Path, reason: String) -> LearnError {
    LearnError::config(
        format!("{}: not the FID Inception-v3 weights: {reason}", path.display()),
        "pass pytorch-fid's pt_inception-2015-12-05-6726825d.pth (or those tensors as safetensors) to --inception",
    )
}

/// The named tensors of a safetensors file or a PyTorch state dict.
fn read(path: &Path) -> Result<Vec<(String, Tensor)>> {
    let safetensors = path.extension().is_some_and(|e| e == "safetensors");
    if safetensors {
        return crate::tensor::read_safetensors(path).map_err(|reason| bad_weights(path, reason));
    }
    let stored = twinsim_data::torch_file::read_state_dict(path)?;
    Ok(stored
        .into_iter()
        .map(|(name, t)| {
            let shape: Vec<i64> = t.shape.iter().map(|&d| d as i64).collect();
            (name, Tensor::from_slice(&t.values).view(shape.as_slice()))
        })
        .collect())
}

/// `images` (N, C, H, W) uint8, grey or colour, as the network's input:
/// (N, 3, 299, 299) uint8, resized with a bicubic (Catmull-Rom) filter,
/// which also smooths when shrinking, grey replicated to three channels.
/// Each resized value is rounded and clamped to 0-255: the uint8
/// quantisation happens here, once, before the network scales to [-1, 1].
pub fn resize(images: &Images) -> Tensor {
    let s: ImageShape = images.shape();
    let side = SIDE as usize;
    let mut out: Vec<u8> = Vec::with_capacity(images.len() * 3 * side * side);
    for pixels in images.as_bytes().chunks_exact(s.len()) {
        let (w, h) = (s.width as u32, s.height as u32);
        let rgb: RgbImage = match s.channels {
            1 => image::DynamicImage::ImageLuma8(
                GrayImage::from_raw(w, h, pixels.to_vec()).expect("a plane of H x W bytes"),
            )
            .to_rgb8(),
            _ => RgbImage::from_fn(w, h, |x, y| {
                let at = |c: usize| pixels[c * s.height * s.width + y as usize * s.width + x as usize];
                image::Rgb([at(0), at(1), at(2)])
            }),
        };
        let resized = if (w, h) == (SIDE, SIDE) {
            rgb
        } else {
            imageops::resize(&rgb, SIDE, SIDE, FilterType::CatmullRom)
        };
        let raw = resized.into_raw();
        for c in 0..3 {
            out.extend(raw.iter().skip(c).step_by(3));
        }
    }
    Tensor::from_slice(&out).view([images.len() as i64, 3, SIDE as i64, SIDE as i64])
}

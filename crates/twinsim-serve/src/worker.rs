//! The one thread that owns the model and the index (libtorch tensors are
//! not shared across threads): requests queue up, and those waiting
//! together are embedded in one forward pass, up to [`MAX_BATCH_IMAGES`]
//! images, then answered one by one. The async executor never runs a
//! forward pass, so a slow request never stalls the others' I/O.

use std::collections::HashMap;
use std::io::Cursor;

use base64::Engine as _;
use serde::Serialize;
use tch::Tensor;
use tokio::sync::{mpsc, oneshot};
use twinsim_data::{Images, LoadOptions};
use twinsim_index::gallery;
use twinsim_index::identify::{self, Hit, Identity};
use twinsim_index::Index;
use twinsim_learn::calibration::Calibration;
use twinsim_learn::run::Run;
use twinsim_learn::similarity::{self, Comparison};

use crate::error::ApiError;
use crate::limits::MAX_BATCH_IMAGES;

/// What to do with a request's embedded images.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Task {
    /// Return the embeddings.
    Embed,
    /// Score image 0 against image 1.
    Compare,
    /// The `k` nearest gallery items of each image, with thumbnails when asked.
    Search { k: usize, thumbnails: bool },
    /// Each image's class, or unknown.
    Identify,
}

/// The answer to a [`Task`].
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum Answer {
    Embeddings {
        embeddings: Vec<Vec<f32>>,
        dim: usize,
        metric: &'static str,
    },
    Comparison(Comparison),
    Results {
        results: Vec<Vec<Found>>,
    },
    Identities {
        identities: Vec<Identity>,
    },
}

/// A search hit, with the gallery image as a PNG data URL when asked.
#[derive(Debug, Serialize)]
pub struct Found {
    #[serde(flatten)]
    pub hit: Hit,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thumbnail: Option<String>,
}

struct Job {
    images: Images,
    task: Task,
    reply: oneshot::Sender<Result<Answer, ApiError>>,
}

/// The handle requests use to reach the worker.
#[derive(Clone)]
pub struct Worker {
    queue: mpsc::Sender<Job>,
}

/// Requests that may wait for the worker before new ones are refused.
const QUEUE: usize = 1024;

impl Worker {
    /// Starts the worker thread, which owns `run` (its model calibrated),
    /// `calibration` and `index`; `data` says where gallery images are read
    /// for thumbnails.
    pub fn start(run: Run, calibration: Calibration, index: Option<Index>, data: LoadOptions) -> Worker {
        let (queue, jobs) = mpsc::channel(QUEUE);
        let engine = Engine {
            run,
            calibration,
            index,
            data,
            thumbnails: HashMap::new(),
        };
        std::thread::Builder::new()
            .name("twinsim-model".into())
            .spawn(move || engine.serve(jobs))
            .expect("the worker thread starts");
        Worker { queue }
    }

    /// Runs `task` on `images` (of the model's input size).
    pub async fn run(&self, images: Images, task: Task) -> Result<Answer, ApiError> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Job { images, task, reply })
            .await
            .map_err(|_| ApiError::internal("the model worker has stopped"))?;
        answer
            .await
            .map_err(|_| ApiError::internal("the model worker dropped a request"))?
    }
}

struct Engine {
    run: Run,
    calibration: Calibration,
    index: Option<Index>,
    data: LoadOptions,
    /// Gallery items already drawn, as PNG data URLs.
    thumbnails: HashMap<usize, String>,
}

impl Engine {
    fn serve(mut self, mut jobs: mpsc::Receiver<Job>) {
        while let Some(first) = jobs.blocking_recv() {
            let mut batch = vec![first];
            let mut images = batch[0].images.len();
            while images < MAX_BATCH_IMAGES {
                match jobs.try_recv() {
                    Ok(job) => {
                        images += job.images.len();
                        batch.push(job);
                    }
                    Err(_) => break,
                }
            }
            self.answer(batch);
        }
    }

    /// Embeds every job's images in one pass, then answers each job.
    fn answer(&mut self, batch: Vec<Job>) {
        let all = concat(batch.iter().map(|j| &j.images));
        let embedded = self.run.model.embed_images(&all, similarity::BATCH);
        let mut at = 0;
        for job in batch {
            let n = job.images.len() as i64;
            let rows = embedded.narrow(0, at, n);
            at += n;
            let _ = job.reply.send(self.finish(&rows, job.task));
        }
    }

    fn finish(&mut self, rows: &Tensor, task: Task) -> Result<Answer, ApiError> {
        match task {
            Task::Embed => {
                let dim = rows.size()[1] as usize;
                let flat = Vec::<f32>::try_from(&rows.reshape([-1]))
                    .map_err(|e| ApiError::internal(e.to_string()))?;
                Ok(Answer::Embeddings {
                    embeddings: flat.chunks(dim.max(1)).map(<[f32]>::to_vec).collect(),
                    dim,
                    metric: self.run.model.card.distance.name(),
                })
            }
            Task::Compare => {
                let d = similarity::distances(&self.run.model, &rows.narrow(0, 0, 1), &rows.narrow(0, 1, 1));
                Ok(Answer::Comparison(similarity::score(&self.calibration, d[0])))
            }
            Task::Search { k, thumbnails } => {
                let index = self.index()?;
                // A gallery smaller than k gives all it has.
                let k = k.min(index.len().max(1));
                let hits = identify::search(index, &self.calibration, rows, k).map_err(refused)?;
                let mut results = Vec::with_capacity(hits.len());
                for row in hits {
                    let drawn = match thumbnails {
                        true => self.thumbnails(&row)?,
                        false => vec![None; row.len()],
                    };
                    results.push(
                        row.into_iter()
                            .zip(drawn)
                            .map(|(hit, thumbnail)| Found { hit, thumbnail })
                            .collect(),
                    );
                }
                Ok(Answer::Results { results })
            }
            Task::Identify => {
                let identities =
                    identify::identify(self.index()?, &self.calibration, rows).map_err(refused)?;
                Ok(Answer::Identities { identities })
            }
        }
    }

    fn index(&self) -> Result<&Index, ApiError> {
        self.index.as_ref().ok_or_else(no_index)
    }

    /// PNG data URLs of the gallery images of `hits` (None where they cannot
    /// be read), drawing those not yet drawn in one read of their sources.
    fn thumbnails(&mut self, hits: &[Hit]) -> Result<Vec<Option<String>>, ApiError> {
        let missing: Vec<&Hit> = hits
            .iter()
            .filter(|h| !self.thumbnails.contains_key(&h.item))
            .collect();
        if !missing.is_empty() {
            let sources: Vec<String> = missing.iter().map(|h| h.source.clone()).collect();
            // Gallery images the server cannot read (moved files, a dataset
            // outside --data-dir) cost the answer its pictures, not its hits.
            match gallery::images_of(&sources, &self.run, &self.data) {
                Ok(images) => {
                    for (i, hit) in missing.iter().enumerate() {
                        self.thumbnails.insert(hit.item, png_data_url(&images, i)?);
                    }
                }
                Err(e) => tracing::warn!("search results go without thumbnails: {e}"),
            }
        }
        Ok(hits
            .iter()
            .map(|h| self.thumbnails.get(&h.item).cloned())
            .collect())
    }
}

/// The refusal of a search the index turns down (an empty gallery, a
/// non-finite embedding): the request cannot be served as it is.
fn refused(e: twinsim_index::IndexError) -> ApiError {
    ApiError::conflict(e.to_string(), e.hint().unwrap_or_else(|| "see the error".into()))
}

/// The refusal of a search or identification without an index.
pub fn no_index() -> ApiError {
    ApiError::conflict(
        "this server has no gallery index loaded",
        "start it with --index INDEX (built by twinsim index build)",
    )
}

/// One buffer holding every image of `parts`, in order.
fn concat<'a>(parts: impl Iterator<Item = &'a Images>) -> Images {
    let parts: Vec<&Images> = parts.collect();
    let shape = parts[0].shape();
    let bytes: Vec<u8> = parts.iter().flat_map(|p| p.as_bytes().iter().copied()).collect();
    Images::new(bytes, shape).expect("images of one model's input size")
}

/// Image `i` of `images` as a `data:image/png;base64,...` URL.
fn png_data_url(images: &Images, i: usize) -> Result<String, ApiError> {
    let s = images.shape();
    let chw = images.image(i);
    let (w, h, c) = (s.width as u32, s.height as u32, s.channels);
    // (C, H, W) planes to interleaved pixels.
    let hw = (w * h) as usize;
    let interleaved: Vec<u8> = (0..hw)
        .flat_map(|p| (0..c).map(move |ch| chw[ch * hw + p]))
        .collect();
    let color = if c == 1 {
        image::ExtendedColorType::L8
    } else {
        image::ExtendedColorType::Rgb8
    };
    let mut png = Vec::new();
    image::write_buffer_with_format(
        &mut Cursor::new(&mut png),
        &interleaved,
        w,
        h,
        color,
        image::ImageFormat::Png,
    )
    .map_err(|e| ApiError::internal(format!("encoding a thumbnail: {e}")))?;
    Ok(format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(png)
    ))
}

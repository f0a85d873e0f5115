//! Speakers in a live session (`diarize`): each ended utterance's voice
//! is embedded beside its recognition and matched, in utterance order,
//! against the speakers the session has heard so far (the mean embedding
//! of each); a voice like none of them is a new speaker. Labels are the
//! letters files get (`A`, `B`, … in order of first speech) and stay the
//! same for the whole session.

use std::collections::BTreeMap;
use std::sync::Arc;

use glagol_core::audio::SAMPLE_RATE;
use glagol_core::diarize::{assign, cluster, Diarizer};
use tokio::sync::mpsc;

use super::Done;

/// Cosine similarity to a speaker's mean from which an utterance is that
/// speaker's (CAM++: the same voice scores about 0.5–0.8, others under 0.35).
const SAME_SPEAKER: f64 = 0.4;
/// Audio shorter than this has too little voice to start a new speaker
/// or move a speaker's mean; it goes to the nearest known one.
const MIN_RELIABLE_SECONDS: f64 = 1.0;

pub(super) struct LiveSpeakers {
    diarizer: Arc<Diarizer>,
    /// Each speaker's embedding sum and count.
    speakers: Vec<(Vec<f64>, usize)>,
    /// Utterances' embeddings as they arrive (None: no voice found), with
    /// whether the audio was long enough to trust.
    embedded: BTreeMap<u64, (Option<Vec<f32>>, bool)>,
    last: Option<usize>,
}

impl LiveSpeakers {
    pub(super) fn new(diarizer: Arc<Diarizer>) -> Self {
        LiveSpeakers {
            diarizer,
            speakers: Vec::new(),
            embedded: BTreeMap::new(),
            last: None,
        }
    }

    /// Embeds an ended utterance's audio off the async runtime; the result
    /// comes back as [`Done::Speaker`].
    pub(super) fn embed(&self, utterance: u64, audio: Vec<f32>, tx: mpsc::UnboundedSender<Done>) {
        let diarizer = self.diarizer.clone();
        tokio::task::spawn_blocking(move || {
            let reliable = audio.len() as f64 / SAMPLE_RATE as f64 >= MIN_RELIABLE_SECONDS;
            let embedding = diarizer.embed(&audio).ok().flatten();
            let _ = tx.send(Done::Speaker {
                utterance,
                embedding,
                reliable,
            });
        });
    }

    pub(super) fn arrived(&mut self, utterance: u64, embedding: Option<Vec<f32>>, reliable: bool) {
        self.embedded.insert(utterance, (embedding, reliable));
    }

    /// Whether the utterance's voice has been embedded.
    pub(super) fn is_ready(&self, utterance: u64) -> bool {
        self.embedded.contains_key(&utterance)
    }

    /// The utterance's speaker label (call in utterance order).
    pub(super) fn assign(&mut self, utterance: u64) -> String {
        let (embedding, reliable) = self.embedded.remove(&utterance).unwrap_or((None, false));
        let speaker = match embedding {
            // No voice to go by: the one who spoke last.
            None => self.last.unwrap_or_else(|| self.add(None)),
            Some(e) => {
                let e: Vec<f64> = e.iter().map(|&x| x as f64).collect();
                let nearest = self
                    .speakers
                    .iter()
                    .enumerate()
                    .map(|(i, (sum, _))| (i, 1.0 - cluster::cosine_distance(sum, &e)))
                    .max_by(|a, b| a.1.total_cmp(&b.1));
                match nearest {
                    Some((i, similarity)) if similarity >= SAME_SPEAKER || !reliable => {
                        if reliable {
                            let (sum, count) = &mut self.speakers[i];
                            sum.iter_mut().zip(&e).for_each(|(s, x)| *s += x);
                            *count += 1;
                        }
                        i
                    }
                    _ => self.add(Some(e)),
                }
            }
        };
        self.last = Some(speaker);
        assign::label(speaker)
    }

    fn add(&mut self, embedding: Option<Vec<f64>>) -> usize {
        let count = usize::from(embedding.is_some());
        self.speakers.push((embedding.unwrap_or_default(), count));
        self.speakers.len() - 1
    }
}

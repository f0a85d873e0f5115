//! Stable partials: what a client is shown of an utterance while it grows.
//!
//! Each partial re-recognises the whole utterance so far, so hypotheses
//! revise earlier words. A word is *committed* once two consecutive
//! hypotheses agree on it and everything before it (local agreement), or
//! once it ended [`SETTLED_S`] before the end of the audio its hypothesis
//! saw (later audio rarely changes it, and a slow engine may not deliver a
//! second hypothesis before the utterance ends); a committed word is never
//! taken back. A partial shows the committed words
//! followed by the newest hypothesis's remaining words, so only that tail
//! can change. The committed words are exactly what an append-only
//! protocol (OpenAI's `delta`) can send while the user speaks.
//!
//! Since committed words never change, a partial need not hear them again:
//! it recognises a window from [`LEFT_CONTEXT_S`] before their end
//! ([`Stabilizer::window_start`]) and keeps only the words it found after
//! them ([`Stabilizer::update_window`]). A window is never longer than
//! [`MAX_WINDOW_S`], and under load (partials wait for a worker, so the
//! committed words trail far behind) never longer than [`LOADED_WINDOW_S`],
//! so that a partial's cost, and so its lag, stays bounded. Words the window no
//! longer reaches keep what the previous hypothesis said of them and are
//! committed: no later partial hears them again (the final does).

use crate::engine::Word;

/// Audio after a word's end that settles it, in seconds.
pub const SETTLED_S: f64 = 1.2;

/// Audio before the end of the committed words that a partial hears again,
/// so the words after them are recognised in context, in seconds.
pub const LEFT_CONTEXT_S: f64 = 1.5;

/// Audio a window must leave out to be used, in seconds: hearing the whole
/// of a short utterance is cheap, and its hypotheses are steadier.
pub const WINDOW_AFTER_S: f64 = 4.0;

/// The most audio a partial hears, in seconds.
pub const MAX_WINDOW_S: f64 = 8.0;

/// The most audio a partial hears under load, in seconds (with word times:
/// without them a window holds the whole text shown). Less left context
/// makes partials a little less steady, so the cap waits for load (16
/// GigaAM streams on 2 cores: partial lag p95 ~25 ms lower than with 3 s).
pub const LOADED_WINDOW_S: f64 = 2.0;

/// Words compared without case and punctuation.
fn key(word: &str) -> String {
    word.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// What one partial shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shown {
    /// The whole text to display.
    pub text: String,
    /// How many leading words of `text` are committed.
    pub committed: usize,
    /// Text newly committed by this partial (with its leading space when
    /// it follows earlier text): append it to what was committed before.
    pub delta: String,
    /// Words shown by the previous partial that this one changed.
    pub retracted: usize,
}

/// The stabilizer of one utterance.
#[derive(Debug, Default)]
pub struct Stabilizer {
    committed: Vec<String>,
    previous: Vec<String>,
    shown: Vec<String>,
    /// Totals over the utterance: words retracted, partials shown.
    pub retracted: usize,
    pub partials: usize,
    /// The committed words with their times (seconds from the utterance's
    /// start).
    committed_words: Vec<Word>,
    /// The previous hypothesis, timed like `committed_words` (which are its
    /// first words).
    previous_words: Vec<Word>,
    /// Hypotheses came without word times: every partial hears it all.
    untimed: bool,
}

impl Stabilizer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Committed text so far.
    pub fn committed_text(&self) -> String {
        self.committed.join(" ")
    }

    /// The most audio a partial may hear, in seconds, `loaded` or not.
    pub fn longest_window(&self, loaded: bool) -> f64 {
        if loaded && !self.untimed {
            LOADED_WINDOW_S
        } else {
            MAX_WINDOW_S
        }
    }

    /// Where a partial that hears the utterance up to `heard` seconds may
    /// start, in seconds from the utterance's start.
    pub fn window_start(&self, heard: f64) -> f64 {
        let after_committed = match self.committed_words.last() {
            Some(w) if !self.untimed && w.end - LEFT_CONTEXT_S >= WINDOW_AFTER_S => {
                w.end - LEFT_CONTEXT_S
            }
            _ => 0.0,
        };
        after_committed.max(heard - MAX_WINDOW_S).max(0.0)
    }

    /// Takes the next hypothesis of a partial that heard the utterance's
    /// audio from `from` (a [`Stabilizer::window_start`]) to `heard`
    /// seconds; `words` are timed from `from`. Returns what to show and the
    /// shown words, timed from the utterance's start (none when the engine
    /// gives no word times).
    pub fn update_window(
        &mut self,
        text: &str,
        words: &[Word],
        from: f64,
        heard: f64,
    ) -> (Shown, Vec<Word>) {
        let spoken = |w: &Word| w.word.trim().to_string();
        let untimed = words.is_empty() && !text.trim().is_empty()
            || words
                .iter()
                .any(|w| spoken(w).contains(char::is_whitespace));
        if self.untimed || untimed {
            // Without times nothing can be windowed: this is the whole utterance.
            self.untimed = true;
            return (self.update(text, &[], heard), Vec::new());
        }
        let heard_words = words
            .iter()
            .map(|w| Word {
                speaker: None,
                word: spoken(w),
                start: w.start + from,
                end: w.end + from,
                probability: w.probability,
            })
            .filter(|w| !w.word.is_empty());
        let middle = |w: &Word| (w.start + w.end) / 2.0;
        let (hypothesis, unheard): (Vec<Word>, usize) = if from > 0.0 {
            // A window: the committed words, the previous hypothesis's words
            // before the window, then what it heard after them (words those
            // already stand for were heard again as context).
            let mut all = self.committed_words.clone();
            all.extend(
                self.previous_words
                    .iter()
                    .skip(all.len())
                    .take_while(|w| middle(w) <= from)
                    .cloned(),
            );
            let known_end = all.last().map_or(0.0, |w| w.end);
            let unheard = all.len();
            all.extend(heard_words.filter(|w| middle(w) > known_end));
            (all, unheard)
        } else {
            // The whole utterance: its words line up with the committed ones
            // by position, as timings drift between hypotheses.
            (heard_words.collect(), 0)
        };
        let text: Vec<String> = hypothesis.iter().map(|w| w.word.clone()).collect();
        let ends: Vec<f64> = hypothesis.iter().map(|w| w.end).collect();
        let before = self.committed_words.len();
        let shown = self.advance(text, &ends, heard, unheard);
        if shown.committed > before {
            self.committed_words
                .extend_from_slice(&hypothesis[before..shown.committed]);
        }
        let mut all = self.committed_words.clone();
        all.extend(hypothesis.into_iter().skip(shown.committed));
        self.previous_words = all.clone();
        (shown, all)
    }

    /// Takes the next hypothesis (the whole utterance so far). `ends` are
    /// its words' end times and `heard` the length of the audio it saw, in
    /// seconds from the utterance's start, where the engine knows them
    /// (`ends` must then have one entry per word of the text).
    pub fn update(&mut self, hypothesis: &str, ends: &[f64], heard: f64) -> Shown {
        let words = hypothesis.split_whitespace().map(String::from).collect();
        self.advance(words, ends, heard, 0)
    }

    /// [`Stabilizer::update`] with the hypothesis in words, of which the
    /// first `unheard` are committed whatever the others say.
    fn advance(&mut self, words: Vec<String>, ends: &[f64], heard: f64, unheard: usize) -> Shown {
        // Commit what this hypothesis and the previous one agree on beyond
        // what is committed, except the very last word (it may still grow),
        // and the words long enough before the end of the audio.
        let before = self.committed.len();
        let agreed = words
            .iter()
            .zip(&self.previous)
            .take_while(|(a, b)| key(a) == key(b))
            .count()
            .min(words.len().saturating_sub(1));
        let settled = if ends.len() == words.len() {
            ends.iter()
                .take_while(|&&end| end + SETTLED_S <= heard)
                .count()
        } else {
            0
        };
        let stable = agreed.max(settled).max(unheard.min(words.len()));
        if stable > before {
            self.committed.extend(words[before..stable].iter().cloned());
        }
        let mut delta = self.committed[before..].join(" ");
        if before > 0 && !delta.is_empty() {
            delta.insert(0, ' ');
        }
        let mut shown = self.committed.clone();
        shown.extend(words.iter().skip(self.committed.len()).cloned());
        let retracted = self
            .shown
            .iter()
            .enumerate()
            .filter(|(i, w)| shown.get(*i).is_none_or(|s| key(s) != key(w)))
            .count();
        self.retracted += retracted;
        self.partials += 1;
        self.previous = words;
        self.shown = shown.clone();
        Shown {
            text: shown.join(" "),
            committed: self.committed.len(),
            delta,
            retracted,
        }
    }

    /// The rest of an utterance for an append-only client once its final is
    /// known: the final's words after the part of it the committed words
    /// stand for (the final prefix closest to them in word edits), with a
    /// leading space when text was committed before.
    pub fn completion(&self, final_text: &str) -> String {
        let words: Vec<&str> = final_text.split_whitespace().collect();
        let from = aligned_prefix(&self.committed, &words);
        let rest = words[from..].join(" ");
        if !self.committed.is_empty() && !rest.is_empty() {
            format!(" {rest}")
        } else {
            rest
        }
    }
}

/// How many leading words of `final_words` the `committed` words stand
/// for: the prefix with the fewest word edits from them (the shortest on a tie).
fn aligned_prefix(committed: &[String], final_words: &[&str]) -> usize {
    let a: Vec<String> = committed.iter().map(|w| key(w)).collect();
    let b: Vec<String> = final_words.iter().map(|w| key(w)).collect();
    // Edit distances between a and every prefix of b, row by row.
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, x) in a.iter().enumerate() {
        let mut next = vec![i + 1; b.len() + 1];
        for (j, y) in b.iter().enumerate() {
            let substitute = row[j] + usize::from(x != y);
            next[j + 1] = substitute.min(row[j + 1] + 1).min(next[j] + 1);
        }
        row = next;
    }
    (0..=b.len()).min_by_key(|&j| (row[j], j)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agreed_words_are_committed_and_never_retracted() {
        let mut s = Stabilizer::new();
        let a = s.update("hello word", &[], 1.0);
        assert_eq!((a.committed, a.delta.as_str(), a.retracted), (0, "", 0));
        let b = s.update("hello world how", &[], 1.5);
        assert_eq!((b.committed, b.delta.as_str()), (1, "hello"));
        assert_eq!(b.text, "hello world how");
        assert_eq!(b.retracted, 1, "'word' became 'world'");
        let c = s.update("Hello, world, how are you", &[], 2.0);
        assert_eq!((c.committed, c.delta.as_str()), (3, " world, how"));
        assert!(c.text.starts_with("hello world, how"));
        // A hypothesis that loses words does not retract committed ones.
        let d = s.update("hello", &[], 2.5);
        assert_eq!(d.text, "hello world, how");
        assert_eq!(d.delta, "");
        let tail = s.completion("Hello, world, how are you today?");
        assert_eq!(tail, " are you today?");
        assert_eq!(
            format!("{}{}", s.committed_text(), tail),
            "hello world, how are you today?"
        );
    }

    #[test]
    fn words_long_before_the_end_of_the_audio_are_settled() {
        let mut s = Stabilizer::new();
        let a = s.update("one two three", &[0.5, 1.0, 2.0], 2.3);
        assert_eq!((a.committed, a.delta.as_str()), (2, "one two"));
        let b = s.update("one two tree four", &[0.5, 1.0, 2.0, 2.6], 3.3);
        assert_eq!((b.committed, b.delta.as_str()), (3, " tree"));
    }

    #[test]
    fn the_completion_follows_the_words_the_commit_stood_for() {
        let mut s = Stabilizer::new();
        s.update("60 тысяч 10 ге сколько", &[0.3, 0.6, 0.8, 0.9, 1.2], 3.0);
        assert_eq!(s.committed_text(), "60 тысяч 10 ге сколько");
        assert_eq!(
            s.completion("60 тысяч тенгет сколько будет стоить"),
            " будет стоить"
        );
    }

    fn word(word: &str, start: f64, end: f64) -> Word {
        Word {
            speaker: None,
            word: word.into(),
            start,
            end,
            probability: 1.0,
        }
    }

    #[test]
    fn windowed_partials_keep_the_committed_words_and_add_what_follows() {
        let mut s = Stabilizer::new();
        let (a, _) = s.update_window(
            "one two three",
            &[
                word("one", 0.1, 0.5),
                word(" two", 0.6, 1.0),
                word("three", 1.9, 2.4),
            ],
            0.0,
            2.5,
        );
        assert_eq!((a.committed, a.delta.as_str()), (2, "one two"));
        assert_eq!(s.window_start(2.5), 0.0, "a short utterance is heard whole");

        let mut s = Stabilizer::new();
        let (b, _) = s.update_window(
            "one two three four five",
            &[
                word("one", 5.1, 5.5),
                word("two", 5.6, 6.0),
                word("three", 6.9, 7.4),
                word("four", 7.6, 8.0),
                word("five", 8.6, 8.9),
            ],
            0.0,
            9.3,
        );
        assert_eq!(b.text, "one two three four five");
        assert_eq!((b.committed, b.delta.as_str()), (4, "one two three four"));
        let from = s.window_start(9.3);
        assert!((from - 6.5).abs() < 1e-9, "{from}");
        // The window re-hears "three four" as context (differently: they are
        // committed) and finds what follows.
        let (c, words) = s.update_window(
            "tree for five six",
            &[
                word("tree", 0.4, 0.9),
                word("for", 1.1, 1.5),
                word("five", 2.1, 2.4),
                word("six", 3.0, 3.3),
            ],
            from,
            10.0,
        );
        assert_eq!(c.text, "one two three four five six");
        assert_eq!(c.retracted, 0);
        assert_eq!(words.len(), 6);
        assert!(
            (words[5].start - 9.5).abs() < 1e-9,
            "timed from the utterance start"
        );
    }

    #[test]
    fn words_a_capped_window_no_longer_hears_are_committed_as_last_heard() {
        let mut s = Stabilizer::new();
        let (a, _) = s.update_window(
            "a b c d",
            &[
                word("a", 0.1, 0.5),
                word("b", 0.6, 1.0),
                word("c", 1.2, 1.6),
                word("d", 2.0, 2.4),
            ],
            0.0,
            2.5,
        );
        assert_eq!((a.committed, a.delta.as_str()), (2, "a b"));
        assert_eq!(s.window_start(6.0), 0.0, "unloaded, a partial hears it all");
        assert_eq!(s.longest_window(false), MAX_WINDOW_S);
        // Under load the next partial comes late: its window is capped and
        // starts after "c" and "d", which only the previous hypothesis heard.
        let from = 6.0 - s.longest_window(true);
        assert_eq!(from, 6.0 - LOADED_WINDOW_S);
        let (b, words) = s.update_window(
            "e f",
            &[word("e", 0.3, 0.7), word("f", 1.5, 2.0)],
            from,
            6.0,
        );
        assert_eq!(b.text, "a b c d e f");
        assert_eq!(b.retracted, 0);
        assert_eq!((b.committed, b.delta.as_str()), (5, " c d e"));
        assert!((words[4].start - (from + 0.3)).abs() < 1e-9);
    }

    #[test]
    fn whole_utterance_hypotheses_line_up_by_position_not_by_drifting_times() {
        let mut s = Stabilizer::new();
        s.update_window(
            "one two three",
            &[
                word("one", 0.1, 0.5),
                word("two", 0.6, 1.0),
                word("three", 1.9, 2.4),
            ],
            0.0,
            2.5,
        );
        // "two" now ends later than the committed "two" did.
        let (b, words) = s.update_window(
            "one two three four",
            &[
                word("one", 0.1, 0.6),
                word("two", 0.9, 1.3),
                word("three", 1.9, 2.4),
                word("four", 2.6, 2.9),
            ],
            0.0,
            3.0,
        );
        assert_eq!(b.text, "one two three four");
        assert_eq!(b.retracted, 0);
        assert_eq!(words.len(), 4);
    }

    #[test]
    fn hypotheses_without_word_times_are_whole_utterances() {
        let mut s = Stabilizer::new();
        s.update_window("one two", &[], 0.0, 1.0);
        let (b, words) = s.update_window("one two three", &[], 0.0, 2.0);
        assert_eq!((b.committed, b.text.as_str()), (2, "one two three"));
        assert!(words.is_empty());
        assert_eq!(s.window_start(2.0), 0.0);
        assert_eq!(s.window_start(10.0), 10.0 - MAX_WINDOW_S);
    }

    #[test]
    fn completion_without_committed_words_is_the_final() {
        let s = Stabilizer::new();
        assert_eq!(s.completion("all of it"), "all of it");
    }
}

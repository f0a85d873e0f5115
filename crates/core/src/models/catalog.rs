//! The built-in catalog: every model glagol knows how to fetch by name.

use serde::{Deserialize, Serialize};

/// Which engine runs a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EngineKind {
    Whisper,
    Gigaam,
    /// Not a recogniser: the voice activity detector.
    Vad,
    /// Not a recogniser: speaker segmentation for diarization.
    Segmentation,
    /// Not a recogniser: speaker embeddings for diarization.
    SpeakerEmbedding,
}

impl EngineKind {
    /// Whether models of this kind turn speech into text.
    pub fn transcribes(self) -> bool {
        matches!(self, EngineKind::Whisper | EngineKind::Gigaam)
    }
}

/// The digest a file must have. Upstream publishes SHA-1 for the
/// whisper.cpp ggml files and Hugging Face shows SHA-256 for LFS files, so
/// both are accepted; glagol always records SHA-256 for what it stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "algorithm", content = "hex", rename_all = "lowercase")]
pub enum Checksum {
    Sha256(&'static str),
    Sha1(&'static str),
}

/// One file of a catalog model.
#[derive(Debug, Clone, Serialize)]
pub struct CatalogFile {
    /// File name inside the model's store directory.
    pub name: &'static str,
    pub url: &'static str,
    /// Size in bytes where known (for progress and disk checks).
    pub size: Option<u64>,
    /// Expected digest where known; files without one are stored with a
    /// warning and their SHA-256 recorded on first download.
    pub checksum: Option<Checksum>,
}

/// A named model.
#[derive(Debug, Clone, Serialize)]
pub struct CatalogEntry {
    pub name: &'static str,
    pub engine: EngineKind,
    pub description: &'static str,
    /// ISO 639-1 codes; `["*"]` for Whisper's ~99 languages.
    pub languages: &'static [&'static str],
    pub files: &'static [CatalogFile],
}

impl CatalogEntry {
    /// Total size where every file's size is known.
    pub fn size(&self) -> Option<u64> {
        self.files.iter().map(|f| f.size).sum()
    }
}

const WHISPER_LANGS: &[&str] = &["*"];
const RU: &[&str] = &["ru"];

macro_rules! whisper {
    ($name:literal, $file:literal, $size:expr, $sha1:literal, $desc:literal) => {
        whisper!($name, $file, $size, Checksum::Sha1($sha1), $desc)
    };
    ($name:literal, $file:literal, $size:expr, $checksum:expr, $desc:literal) => {
        CatalogEntry {
            name: $name,
            engine: EngineKind::Whisper,
            description: $desc,
            languages: WHISPER_LANGS,
            files: &[CatalogFile {
                name: $file,
                url: concat!(
                    "https://huggingface.co/ggerganov/whisper.cpp/resolve/main/",
                    $file
                ),
                size: $size,
                checksum: Some($checksum),
            }],
        }
    };
}

macro_rules! gigaam_file {
    ($file:literal) => {
        gigaam_file!($file, None)
    };
    ($file:literal, $checksum:expr) => {
        CatalogFile {
            name: $file,
            url: concat!(
                "https://huggingface.co/istupakov/gigaam-v3-onnx/resolve/main/",
                $file
            ),
            size: None,
            checksum: $checksum,
        }
    };
}

/// Every model glagol can pull by name.
pub static CATALOG: &[CatalogEntry] = &[
    whisper!("whisper-tiny", "ggml-tiny.bin", Some(77_691_713), "bd577a113a864445d4c299885e0cb97d4ba92b5f", "Whisper tiny, multilingual (75 MB)"),
    whisper!("whisper-base", "ggml-base.bin", Some(147_951_465), "465707469ff3a37a2b9b8d8f89f2f99de7299dac", "Whisper base, multilingual (142 MB)"),
    whisper!("whisper-small", "ggml-small.bin", Some(487_601_967), "55356645c2b361a969dfd0ef2c5a50d530afd8d5", "Whisper small, multilingual (466 MB)"),
    whisper!("whisper-medium", "ggml-medium.bin", Some(1_533_763_059), "fd9727b6e1217c2f614f9b698455c4ffd82463b4", "Whisper medium, multilingual (1.5 GB)"),
    whisper!("whisper-large-v3", "ggml-large-v3.bin", Some(3_095_033_483), "ad82bf6a9043ceed055076d0fd39f5f186ff8062", "Whisper large-v3, multilingual (2.9 GB)"),
    whisper!("whisper-large-v3-turbo", "ggml-large-v3-turbo.bin", Some(1_624_555_275), "4af2b29d7ec73d781377bfd1758ca957a807e941", "Whisper large-v3-turbo, multilingual (1.5 GB)"),
    // Quantized copies published with whisper.cpp (SHA-256 of the Hugging Face files).
    whisper!("whisper-tiny-q5_1", "ggml-tiny-q5_1.bin", Some(32_152_673), Checksum::Sha256("818710568da3ca15689e31a743197b520007872ff9576237bda97bd1b469c3d7"), "Whisper tiny, q5_1 quantized (31 MB)"),
    whisper!("whisper-tiny-q8_0", "ggml-tiny-q8_0.bin", Some(43_537_433), Checksum::Sha256("c2085835d3f50733e2ff6e4b41ae8a2b8d8110461e18821b09a15c40c42d1cca"), "Whisper tiny, q8_0 quantized (42 MB)"),
    whisper!("whisper-base-q5_1", "ggml-base-q5_1.bin", Some(59_707_625), Checksum::Sha256("422f1ae452ade6f30a004d7e5c6a43195e4433bc370bf23fac9cc591f01a8898"), "Whisper base, q5_1 quantized (57 MB)"),
    whisper!("whisper-base-q8_0", "ggml-base-q8_0.bin", Some(81_768_585), Checksum::Sha256("c577b9a86e7e048a0b7eada054f4dd79a56bbfa911fbdacf900ac5b567cbb7d9"), "Whisper base, q8_0 quantized (78 MB)"),
    whisper!("whisper-small-q5_1", "ggml-small-q5_1.bin", Some(190_085_487), Checksum::Sha256("ae85e4a935d7a567bd102fe55afc16bb595bdb618e11b2fc7591bc08120411bb"), "Whisper small, q5_1 quantized (181 MB)"),
    whisper!("whisper-small-q8_0", "ggml-small-q8_0.bin", Some(264_464_607), Checksum::Sha256("49c8fb02b65e6049d5fa6c04f81f53b867b5ec9540406812c643f177317f779f"), "Whisper small, q8_0 quantized (252 MB)"),
    whisper!("whisper-medium-q5_0", "ggml-medium-q5_0.bin", Some(539_212_467), Checksum::Sha256("19fea4b380c3a618ec4723c3eef2eb785ffba0d0538cf43f8f235e7b3b34220f"), "Whisper medium, q5_0 quantized (514 MB)"),
    whisper!("whisper-medium-q8_0", "ggml-medium-q8_0.bin", Some(823_369_779), Checksum::Sha256("42a1ffcbe4167d224232443396968db4d02d4e8e87e213d3ee2e03095dea6502"), "Whisper medium, q8_0 quantized (785 MB)"),
    whisper!("whisper-large-v3-q5_0", "ggml-large-v3-q5_0.bin", Some(1_081_140_203), Checksum::Sha256("d75795ecff3f83b5faa89d1900604ad8c780abd5739fae406de19f23ecd98ad1"), "Whisper large-v3, q5_0 quantized (1.0 GB)"),
    whisper!("whisper-large-v3-turbo-q5_0", "ggml-large-v3-turbo-q5_0.bin", Some(574_041_195), Checksum::Sha256("394221709cd5ad1f40c46e6031ca61bce88931e6e088c188294c6d5a55ffa7e2"), "Whisper large-v3-turbo, q5_0 quantized (547 MB)"),
    whisper!("whisper-large-v3-turbo-q8_0", "ggml-large-v3-turbo-q8_0.bin", Some(874_188_075), Checksum::Sha256("317eb69c11673c9de1e1f0d459b253999804ec71ac4c23c17ecf5fbe24e259a1"), "Whisper large-v3-turbo, q8_0 quantized (834 MB)"),
    CatalogEntry {
        name: "gigaam-v3-e2e-rnnt",
        engine: EngineKind::Gigaam,
        description: "GigaAM v3 end-to-end RNN-T: Russian with punctuation and case (default for ru)",
        languages: RU,
        files: &[
            gigaam_file!("v3_e2e_rnnt_encoder.onnx", Some(Checksum::Sha256("cd60b3764a832e8560ae6d3ad0b10adc1a42ffae412b9476f25620aae4f4a508"))),
            gigaam_file!("v3_e2e_rnnt_decoder.onnx", Some(Checksum::Sha256("7b0a16d67fd2cb37061decc93c69e364a9ab27afee3c57495d55b1c974cf7231"))),
            gigaam_file!("v3_e2e_rnnt_joint.onnx", Some(Checksum::Sha256("602ff7017a93311aad34df1437c8d7f49911353c13d6eae7a6ee7b041339465c"))),
            gigaam_file!("v3_e2e_rnnt_vocab.txt", Some(Checksum::Sha256("39abae20e692998290c574e606f11a9edef2902a1995463fcff63d1490cf22b7"))),
            gigaam_file!("config.json"),
        ],
    },
    CatalogEntry {
        name: "gigaam-v3-rnnt",
        engine: EngineKind::Gigaam,
        description: "GigaAM v3 RNN-T: Russian, lowercase without punctuation",
        languages: RU,
        files: &[
            gigaam_file!("v3_rnnt_encoder.onnx"),
            gigaam_file!("v3_rnnt_decoder.onnx"),
            gigaam_file!("v3_rnnt_joint.onnx"),
            gigaam_file!("v3_vocab.txt"),
            gigaam_file!("config.json"),
        ],
    },
    CatalogEntry {
        name: "gigaam-v3-e2e-ctc",
        engine: EngineKind::Gigaam,
        description: "GigaAM v3 end-to-end CTC: Russian with punctuation and case, fastest",
        languages: RU,
        files: &[gigaam_file!("v3_e2e_ctc.onnx"), gigaam_file!("v3_e2e_ctc_vocab.txt"), gigaam_file!("config.json")],
    },
    CatalogEntry {
        name: "gigaam-v3-ctc",
        engine: EngineKind::Gigaam,
        description: "GigaAM v3 CTC: Russian, lowercase without punctuation",
        languages: RU,
        files: &[gigaam_file!("v3_ctc.onnx"), gigaam_file!("v3_vocab.txt"), gigaam_file!("config.json")],
    },
    CatalogEntry {
        name: "silero-vad",
        engine: EngineKind::Vad,
        description: "Silero VAD v6 (16 kHz ONNX); also embedded in the glagol binary",
        languages: &[],
        files: &[CatalogFile {
            name: "silero_vad_16k_op15.onnx",
            url: "https://raw.githubusercontent.com/snakers4/silero-vad/master/src/silero_vad/data/silero_vad_16k_op15.onnx",
            size: Some(1_289_603),
            checksum: Some(Checksum::Sha256("7ed98ddbad84ccac4cd0aeb3099049280713df825c610a8ed34543318f1b2c49")),
        }],
    },
    CatalogEntry {
        name: "pyannote-segmentation-3.0",
        engine: EngineKind::Segmentation,
        description: "pyannote segmentation-3.0 (ONNX, MIT): who speaks in each 17 ms, for diarization",
        languages: &[],
        files: &[CatalogFile {
            name: "segmentation-3.0.onnx",
            url: "https://github.com/thewh1teagle/pyannote-rs/releases/download/v0.1.0/segmentation-3.0.onnx",
            size: Some(5_983_836),
            checksum: Some(Checksum::Sha256("b78fc48113bb46fd247ae6a9aea737079550c647638db961df7e0e1e9f4ba62e")),
        }],
    },
    CatalogEntry {
        name: "campplus-zh-en",
        engine: EngineKind::SpeakerEmbedding,
        description: "3D-Speaker CAM++ zh-en speaker embeddings (ONNX, Apache-2.0; default for diarization)",
        languages: &[],
        files: &[CatalogFile {
            name: "3dspeaker_speech_campplus_sv_zh_en_16k-common_advanced.onnx",
            url: "https://github.com/k2-fsa/sherpa-onnx/releases/download/speaker-recongition-models/3dspeaker_speech_campplus_sv_zh_en_16k-common_advanced.onnx",
            size: Some(28_281_164),
            checksum: Some(Checksum::Sha256("aa3cfc16963a10586a9393f5035d6d6b57e98d358b347f80c2a30bf4f00ceba2")),
        }],
    },
    CatalogEntry {
        name: "wespeaker-resnet34",
        engine: EngineKind::SpeakerEmbedding,
        description: "WeSpeaker ResNet34-LM speaker embeddings (ONNX, CC-BY-4.0), pyannote 3.1's",
        languages: &[],
        files: &[CatalogFile {
            name: "model.onnx",
            url: "https://huggingface.co/onnx-community/wespeaker-voxceleb-resnet34-LM/resolve/main/onnx/model.onnx",
            size: Some(26_535_549),
            checksum: Some(Checksum::Sha256("3955447b0499dc9e0a4541a895df08b03c69098eba4e56c02b5603e9f7f4fcbb")),
        }],
    },
];

/// Looks a model up by its catalog name.
pub fn find(name: &str) -> Option<&'static CatalogEntry> {
    CATALOG.iter().find(|e| e.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_urls_match_files() {
        let mut names: Vec<_> = CATALOG.iter().map(|e| e.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), CATALOG.len());
        for e in CATALOG {
            for f in e.files {
                assert!(f.url.ends_with(f.name), "{} {}", e.name, f.url);
                if e.engine == EngineKind::Gigaam {
                    assert!(f.url.contains("istupakov/gigaam-v3-onnx"));
                }
            }
        }
        assert!(find("whisper-base").is_some());
        assert!(find("nope").is_none());
    }
}

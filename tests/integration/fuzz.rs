//! The fuzz targets (`fuzz/`) on the stable toolchain: every committed corpus input, then
//! random inputs and random edits of corpus inputs through proptest. None may panic. The
//! coverage-guided runs (`cargo +nightly fuzz run TARGET`) grow the corpus; this replays it.

use std::path::Path;
use std::sync::OnceLock;

use proptest::prelude::*;
use scanpay::fuzzing;

type Target = fn(&[u8]);

const TARGETS: [(&str, Target); 6] = [
    ("scanner_serial", fuzzing::scanner_serial),
    ("scanner_hid", fuzzing::scanner_hid),
    ("openapi_response", fuzzing::openapi_response),
    ("ams_response", fuzzing::ams_response),
    ("api_request", fuzzing::api_request),
    ("alipay_cert", fuzzing::alipay_cert),
];

/// The committed corpus of each target, read once.
fn corpus(target: &str) -> &'static [Vec<u8>] {
    type Corpora = Vec<(&'static str, Vec<Vec<u8>>)>;
    static CORPORA: OnceLock<Corpora> = OnceLock::new();
    let all = CORPORA.get_or_init(|| {
        TARGETS
            .iter()
            .map(|(name, _)| (*name, read_corpus(name)))
            .collect()
    });
    all.iter()
        .find(|(name, _)| *name == target)
        .map(|(_, inputs)| inputs.as_slice())
        .unwrap_or(&[])
}

fn read_corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut inputs: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| std::fs::read(entry.unwrap().path()).unwrap())
        .collect();
    inputs.sort();
    inputs
}

#[test]
fn every_corpus_input_runs_through_its_target() {
    for (name, target) in TARGETS {
        let inputs = corpus(name);
        assert!(inputs.len() >= 5, "{name}: corpus too small");
        for input in inputs {
            target(input);
        }
    }
}

/// An edit of a corpus input: bytes replaced, inserted or cut at chosen places.
#[derive(Debug, Clone)]
enum Edit {
    Set(usize, u8),
    Insert(usize, Vec<u8>),
    Cut(usize, usize),
}

fn edits() -> impl Strategy<Value = Vec<Edit>> {
    prop::collection::vec(
        prop_oneof![
            (any::<usize>(), any::<u8>()).prop_map(|(at, b)| Edit::Set(at, b)),
            (any::<usize>(), prop::collection::vec(any::<u8>(), 1..16))
                .prop_map(|(at, bytes)| Edit::Insert(at, bytes)),
            (any::<usize>(), 1usize..32).prop_map(|(at, n)| Edit::Cut(at, n)),
        ],
        1..8,
    )
}

fn apply(mut input: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
    for edit in edits {
        let len = input.len().max(1);
        match edit {
            Edit::Set(at, b) => {
                if !input.is_empty() {
                    input[at % len] = *b;
                }
            }
            Edit::Insert(at, bytes) => {
                let at = at % (input.len() + 1);
                input.splice(at..at, bytes.iter().copied());
            }
            Edit::Cut(at, n) => {
                let at = at % len;
                let end = (at + n).min(input.len());
                if at < end {
                    input.drain(at..end);
                }
            }
        }
    }
    input
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(target in 0usize..TARGETS.len(), bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        (TARGETS[target].1)(&bytes);
    }

    #[test]
    fn edited_corpus_inputs_never_panic(target in 0usize..TARGETS.len(), pick in any::<usize>(), edits in edits()) {
        let (name, run) = TARGETS[target];
        let inputs = corpus(name);
        let input = apply(inputs[pick % inputs.len()].clone(), &edits);
        run(&input);
    }
}

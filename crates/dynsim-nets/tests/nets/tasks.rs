//! The PDM family: period lengths and order, channel statistics, labels, masks, training samples
//! and the seeding contract.

use dynsim_nets::task::{self, noise_sd, sample_seed, train_sample, Split, Timing, COHERENCES, N_INPUTS};
use dynsim_nets::{Batch, Rule, Task};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn names(t: &dynsim_nets::Trial) -> Vec<&str> {
    t.periods.iter().map(|p| p.name).collect()
}

#[test]
fn test_timing_is_fixed() {
    for rule in Rule::ALL {
        let batch = Batch::test(&rule, 0..20).unwrap();
        let expected: &[(&str, usize, usize)] = if rule.has_delay() {
            &[("fixation", 0, 25), ("stimulus", 25, 225), ("delay", 225, 325), ("decision", 325, 350)]
        } else {
            &[("fixation", 0, 10), ("stimulus", 10, 210), ("decision", 210, 220)]
        };
        assert_eq!(batch.steps, expected.last().unwrap().2);
        assert_eq!(rule.test_steps(), batch.steps);
        for t in &batch.trials {
            let got: Vec<(&str, usize, usize)> = t.periods.iter().map(|p| (p.name, p.start, p.end)).collect();
            assert_eq!(got, expected, "{}", rule.name());
        }
    }
}

#[test]
fn train_timing_draws_every_duration_from_its_set() {
    for rule in Rule::ALL {
        let sets = rule.durations(Timing::Train);
        let mut seen: Vec<std::collections::BTreeSet<usize>> = vec![Default::default(); sets.len()];
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for _ in 0..600 {
            let t = rule.trial(Timing::Train, &mut rng);
            assert_eq!(names(&t), sets.iter().map(|(n, _)| *n).collect::<Vec<_>>());
            let mut start = 0;
            for (k, p) in t.periods.iter().enumerate() {
                assert_eq!(p.start, start, "periods tile the trial");
                let len = p.end - p.start;
                assert!(
                    sets[k].1.iter().any(|ms| (ms / 20.0) as usize == len),
                    "{} {} of {len} steps",
                    rule.name(),
                    p.name
                );
                seen[k].insert(len);
                start = p.end;
            }
            assert_eq!(start, t.steps());
        }
        for (k, s) in seen.iter().enumerate() {
            assert_eq!(s.len(), 3, "{}: every choice of the {} set appears", rule.name(), sets[k].0);
        }
    }
}

#[test]
fn channels_labels_and_mask_follow_the_periods() {
    for rule in Rule::ALL {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        for _ in 0..200 {
            let t = rule.trial(Timing::Train, &mut rng);
            assert!(COHERENCES.contains(&t.coherence));
            assert!(t.ground_truth == 1 || t.ground_truth == 2);
            let answer = if rule.is_anti() { 3 - t.ground_truth } else { t.ground_truth };
            for p in &t.periods {
                for s in p.start..p.end {
                    let row = &t.inputs[s * N_INPUTS..(s + 1) * N_INPUTS];
                    for (c, v) in row.iter().enumerate().skip(3) {
                        assert_eq!(*v, if c == rule.cue_channel() { 1.0 } else { 0.0 }, "rule cue on every step");
                    }
                    let decision = p.name == "decision";
                    assert_eq!(row[0], if decision { 0.0 } else { 1.0 }, "fixation input");
                    assert_eq!(t.mask[s], decision);
                    assert_eq!(t.labels[s], if decision { answer } else { 0 });
                    if p.name != "stimulus" {
                        assert_eq!((row[1], row[2]), (0.0, 0.0), "no stimulus outside the stimulus period");
                    }
                }
            }
        }
    }
}

#[test]
fn stimulus_means_and_noise_match_the_coherence() {
    // Per coherence: mean of (strong − 0.5) and (weak − 0.5) over many stimulus steps, and the
    // residual standard deviation.
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let mut sums = vec![(0.0, 0.0, 0usize); COHERENCES.len()];
    let (mut sq, mut count) = (0.0, 0usize);
    for _ in 0..2500 {
        let t = Rule::Pdm.trial(Timing::Test, &mut rng);
        let k = COHERENCES.iter().position(|&c| c == t.coherence).unwrap();
        let range = t.period("stimulus").unwrap();
        let (strong, weak) = if t.ground_truth == 1 { (1, 2) } else { (2, 1) };
        let mean = t.coherence / 200.0;
        for s in range {
            let row = &t.inputs[s * N_INPUTS..(s + 1) * N_INPUTS];
            sums[k].0 += row[strong] - 0.5;
            sums[k].1 += row[weak] - 0.5;
            sums[k].2 += 1;
            sq += (row[strong] - 0.5 - mean).powi(2) + (row[weak] - 0.5 + mean).powi(2);
            count += 2;
        }
    }
    let sd = (sq / count as f64).sqrt();
    assert!((sd - noise_sd()).abs() < 0.002, "noise sd {sd} vs {}", noise_sd());
    assert!((noise_sd() - 0.2236).abs() < 1e-4);
    for (k, (s, w, n)) in sums.iter().enumerate() {
        assert!(*n > 50_000, "each coherence drawn often");
        let se = 4.0 * noise_sd() / (*n as f64).sqrt();
        let c = COHERENCES[k] / 200.0;
        assert!((s / *n as f64 - c).abs() < se, "coherence {}: strong side mean", COHERENCES[k]);
        assert!((w / *n as f64 + c).abs() < se, "coherence {}: weak side mean", COHERENCES[k]);
    }
}

#[test]
fn ground_truth_and_coherence_are_uniform() {
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let (mut ones, mut per_coh) = (0, [0usize; 5]);
    let n = 5000;
    for _ in 0..n {
        let t = Rule::AntiPdm.trial(Timing::Train, &mut rng);
        ones += usize::from(t.ground_truth == 1);
        per_coh[COHERENCES.iter().position(|&c| c == t.coherence).unwrap()] += 1;
    }
    assert!((ones as f64 / n as f64 - 0.5).abs() < 0.03);
    for c in per_coh {
        assert!((c as f64 / n as f64 - 0.2).abs() < 0.025);
    }
}

#[test]
fn training_samples_start_at_an_onset_and_hold_one_complete_trial() {
    for rule in Rule::ALL {
        for i in 0..50u64 {
            let seed = sample_seed(9, rule.name(), Split::Train { phase: 0, epoch: 0 }, i);
            let (sample, first_len) = train_sample(&rule, task::TRAIN_STEPS, &mut ChaCha8Rng::seed_from_u64(seed));
            let first = rule.trial(Timing::Train, &mut ChaCha8Rng::seed_from_u64(seed));
            assert_eq!(first.steps(), first_len);
            assert!(first_len < task::TRAIN_STEPS, "a whole trial fits in a sample");
            assert_eq!(sample.steps(), task::TRAIN_STEPS);
            assert_eq!(sample.inputs.len(), task::TRAIN_STEPS * N_INPUTS);
            assert_eq!(&sample.inputs[..first_len * N_INPUTS], first.inputs.as_slice(), "the first trial is complete");
            assert_eq!(&sample.labels[..first_len], first.labels.as_slice());
            assert_eq!(sample.periods[0].name, "fixation");
            assert_eq!(sample.periods[0].start, 0, "starts at a trial onset");
            let second = &sample.periods[first.periods.len()];
            assert_eq!((second.name, second.start), ("fixation", first_len), "the next trial follows at once");
            assert!(sample.periods.last().unwrap().end == task::TRAIN_STEPS);
        }
    }
}

#[test]
fn sets_are_reproducible_and_independent() {
    let a = Batch::train(&Rule::Pdm, 1, Split::Train { phase: 0, epoch: 0 }, 0..8).unwrap();
    assert_eq!(
        a,
        Batch::train(&Rule::Pdm, 1, Split::Train { phase: 0, epoch: 0 }, 0..8).unwrap(),
        "same seed, same samples"
    );
    assert_eq!(
        Batch::train(&Rule::Pdm, 1, Split::Train { phase: 0, epoch: 0 }, 4..8).unwrap().inputs,
        a.inputs[4 * 400 * 7..],
        "sample i does not depend on the batch"
    );
    assert_ne!(
        a.inputs,
        Batch::train(&Rule::Pdm, 2, Split::Train { phase: 0, epoch: 0 }, 0..8).unwrap().inputs,
        "other seed"
    );
    assert_ne!(
        a.inputs,
        Batch::train(&Rule::Pdm, 1, Split::Train { phase: 0, epoch: 1 }, 0..8).unwrap().inputs,
        "other epoch"
    );
    assert_ne!(
        a.inputs,
        Batch::train(&Rule::Pdm, 1, Split::Train { phase: 1, epoch: 0 }, 0..8).unwrap().inputs,
        "other phase"
    );
    assert_ne!(
        a.inputs,
        Batch::train(&Rule::AntiPdm, 1, Split::Train { phase: 0, epoch: 0 }, 0..8).unwrap().inputs,
        "other rule"
    );
    // Test and eval sets do not depend on any run seed: every model sees the same trials.
    assert_eq!(Batch::test(&Rule::AntiPdmDelay, 0..5).unwrap(), Batch::test(&Rule::AntiPdmDelay, 0..5).unwrap());
    assert_ne!(Batch::eval(&Rule::Pdm, 0..5).unwrap().inputs, Batch::test(&Rule::Pdm, 0..5).unwrap().inputs);
}

#[test]
fn rule_names_parse_and_reject() {
    for rule in Rule::ALL {
        assert_eq!(Rule::parse(rule.name()).unwrap(), rule);
    }
    assert_eq!(Rule::parse("AntiPDMDelay").unwrap(), Rule::AntiPdmDelay);
    let err = Rule::parse("pdm_dela").unwrap_err().to_string();
    assert!(err.contains("pdm_dela") && err.contains("anti_pdm_delay"), "{err}");
}

//! Speakers from embeddings: pyannote 3.1's agglomerative clustering.
//!
//! Embeddings are unit-normalised and merged by centroid linkage on
//! Euclidean distance; the tree is cut at the threshold; clusters with
//! fewer than `min_cluster_size` members are folded into the nearest large
//! one (cosine between centroids); a requested speaker count picks instead
//! the cut nearest the threshold that gives it. Finally every embedding
//! goes to the nearest cluster centroid by cosine.

/// pyannote/speaker-diarization-3.1's threshold (Euclidean distance
/// between unit vectors).
pub const THRESHOLD: f64 = 0.704_565_496_394_579_9;
/// Clusters smaller than this are not speakers of their own (lowered to a
/// tenth of the embeddings for short audio).
const MIN_CLUSTER_SIZE: usize = 12;

/// How many speakers to find.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SpeakerCount {
    pub exactly: Option<usize>,
    pub min: usize,
    pub max: Option<usize>,
}

impl Default for SpeakerCount {
    fn default() -> Self {
        SpeakerCount {
            exactly: None,
            min: 1,
            max: None,
        }
    }
}

/// One merge of the dendrogram, in the order it happened.
#[derive(Debug, Clone, Copy)]
struct Merge {
    /// Node ids: `0..n` are the embeddings, `n + i` the node of merge `i`.
    left: usize,
    right: usize,
    distance: f64,
    size: usize,
}

fn unit(v: &[f32]) -> Vec<f64> {
    let norm = v.iter().map(|&x| (x as f64).powi(2)).sum::<f64>().sqrt();
    v.iter().map(|&x| x as f64 / norm.max(1e-12)).collect()
}

fn euclidean(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).powi(2))
        .sum::<f64>()
        .sqrt()
}

/// Cosine distance; 1 (orthogonal) where either vector is zero.
pub fn cosine_distance(a: &[f64], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na = a.iter().map(|x| x * x).sum::<f64>().sqrt();
    let nb = b.iter().map(|x| x * x).sum::<f64>().sqrt();
    if na == 0.0 || nb == 0.0 {
        return 1.0;
    }
    1.0 - dot / (na * nb)
}

/// Centroid linkage over the points, keeping each cluster's nearest
/// neighbour so a merge costs one pass, not a new distance matrix.
fn linkage(points: &[Vec<f64>]) -> Vec<Merge> {
    let n = points.len();
    let mut centroid = points.to_vec();
    let mut size = vec![1usize; n];
    let mut node: Vec<usize> = (0..n).collect();
    let mut alive = vec![true; n];
    let mut nearest = vec![(usize::MAX, f64::INFINITY); n];
    let nearest_of = |i: usize, centroid: &[Vec<f64>], alive: &[bool]| {
        let mut best = (usize::MAX, f64::INFINITY);
        for j in 0..centroid.len() {
            if j != i && alive[j] {
                let d = euclidean(&centroid[i], &centroid[j]);
                if d < best.1 {
                    best = (j, d);
                }
            }
        }
        best
    };
    for (i, slot) in nearest.iter_mut().enumerate() {
        *slot = nearest_of(i, &centroid, &alive);
    }
    let mut merges = Vec::with_capacity(n.saturating_sub(1));
    for step in 0..n.saturating_sub(1) {
        let a = (0..n)
            .filter(|&i| alive[i])
            .min_by(|&x, &y| nearest[x].1.total_cmp(&nearest[y].1))
            .expect("two clusters remain");
        let (b, distance) = nearest[a];
        let (keep, gone) = (a.min(b), a.max(b));
        let total = size[keep] + size[gone];
        let merged: Vec<f64> = centroid[keep]
            .iter()
            .zip(&centroid[gone])
            .map(|(x, y)| (x * size[keep] as f64 + y * size[gone] as f64) / total as f64)
            .collect();
        merges.push(Merge {
            left: node[keep].min(node[gone]),
            right: node[keep].max(node[gone]),
            distance,
            size: total,
        });
        centroid[keep] = merged;
        size[keep] = total;
        node[keep] = n + step;
        alive[gone] = false;
        for k in 0..n {
            if !alive[k] || k == keep {
                continue;
            }
            let d = euclidean(&centroid[keep], &centroid[k]);
            if d < nearest[k].1 {
                nearest[k] = (keep, d);
            } else if nearest[k].0 == keep || nearest[k].0 == gone {
                nearest[k] = nearest_of(k, &centroid, &alive);
            }
        }
        nearest[keep] = nearest_of(keep, &centroid, &alive);
    }
    merges
}

/// Flat clusters where every node whose subtree's largest merge distance
/// is at most `cut` keeps its leaves together (scipy's `fcluster` with
/// `criterion="distance"`); labels count up in left-first order.
fn cut_tree(merges: &[Merge], n: usize, height: impl Fn(usize) -> f64, cut: f64) -> Vec<usize> {
    let mut labels = vec![0usize; n];
    if n == 1 {
        return labels;
    }
    let mut max_below = vec![0.0f64; merges.len()];
    for (i, m) in merges.iter().enumerate() {
        let child = |c: usize| {
            if c >= n {
                max_below[c - n]
            } else {
                f64::NEG_INFINITY
            }
        };
        max_below[i] = height(i).max(child(m.left)).max(child(m.right));
    }
    let mut next = 0;
    let mut stack = vec![n + merges.len() - 1];
    while let Some(id) = stack.pop() {
        if id >= n && max_below[id - n] > cut {
            stack.push(merges[id - n].right);
            stack.push(merges[id - n].left);
            continue;
        }
        for leaf in leaves(merges, n, id) {
            labels[leaf] = next;
        }
        next += 1;
    }
    labels
}

fn leaves(merges: &[Merge], n: usize, id: usize) -> Vec<usize> {
    let mut out = Vec::new();
    let mut stack = vec![id];
    while let Some(id) = stack.pop() {
        if id < n {
            out.push(id);
        } else {
            stack.push(merges[id - n].right);
            stack.push(merges[id - n].left);
        }
    }
    out
}

fn sizes(labels: &[usize]) -> Vec<usize> {
    let mut counts = vec![0usize; labels.iter().max().map_or(0, |m| m + 1)];
    for &l in labels {
        counts[l] += 1;
    }
    counts
}

fn mean_of(points: &[Vec<f64>], labels: &[usize], label: usize) -> Vec<f64> {
    let mut sum = vec![0.0f64; points[0].len()];
    let mut count = 0usize;
    for (p, _) in points.iter().zip(labels).filter(|(_, &l)| l == label) {
        for (s, x) in sum.iter_mut().zip(p) {
            *s += x;
        }
        count += 1;
    }
    sum.iter().map(|s| s / count.max(1) as f64).collect()
}

/// Clusters the embeddings; returns each one's cluster and the clusters'
/// centroids (means of the raw embeddings). Missing embeddings (`None`)
/// take no part and come back in the nearest cluster to nothing, 0.
pub fn cluster(
    embeddings: &[Option<Vec<f32>>],
    threshold: f64,
    count: SpeakerCount,
) -> (Vec<usize>, Vec<Vec<f64>>) {
    let train: Vec<&Vec<f32>> = embeddings.iter().flatten().collect();
    let n = train.len();
    let mut max = count.max.unwrap_or(n).max(1);
    let mut min = count.min.max(1);
    if let Some(k) = count.exactly {
        (min, max) = (k.max(1), k.max(1));
    }
    let raw: Vec<Vec<f64>> = train
        .iter()
        .map(|v| v.iter().map(|&x| x as f64).collect())
        .collect();
    if n <= 1 || max < 2 {
        let centroid = if n == 0 {
            Vec::new()
        } else {
            vec![mean_of(&raw, &vec![0; n], 0)]
        };
        return (vec![0; embeddings.len()], centroid);
    }
    let points: Vec<Vec<f64>> = train.iter().map(|v| unit(v)).collect();
    let smallest = MIN_CLUSTER_SIZE.min(((n as f64 * 0.1).round() as usize).max(1));
    let merges = linkage(&points);
    let large_count = |labels: &[usize]| sizes(labels).iter().filter(|&&s| s >= smallest).count();
    let mut labels = cut_tree(&merges, n, |i| merges[i].distance, threshold);
    let found = large_count(&labels);
    let want = if count.exactly.is_some() || found > max {
        Some(max)
    } else if found < min {
        Some(min)
    } else {
        None
    };
    if let Some(want) = want.filter(|&w| w != found) {
        // Cut after the merge whose distance is nearest the threshold
        // and that gives the wanted number of large clusters.
        let mut order: Vec<usize> = (0..merges.len()).collect();
        order.sort_by(|&a, &b| {
            (merges[a].distance - threshold)
                .abs()
                .total_cmp(&(merges[b].distance - threshold).abs())
        });
        let (mut best, mut best_found) = (merges.len() - 1, 1usize);
        for it in order {
            if merges[it].size < smallest {
                continue;
            }
            let l = cut_tree(&merges, n, |i| i as f64, it as f64);
            let k = large_count(&l);
            if k.abs_diff(want) < best_found.abs_diff(want) {
                (best, best_found) = (it, k);
            }
            if k == want {
                break;
            }
        }
        labels = cut_tree(&merges, n, |i| i as f64, best as f64);
    }
    let counts = sizes(&labels);
    let large: Vec<usize> = (0..counts.len())
        .filter(|&l| counts[l] >= smallest)
        .collect();
    if large.is_empty() {
        labels.fill(0);
    } else {
        let large_means: Vec<Vec<f64>> = large
            .iter()
            .map(|&l| mean_of(&points, &labels, l))
            .collect();
        let small: Vec<usize> = (0..counts.len())
            .filter(|&l| counts[l] > 0 && counts[l] < smallest)
            .collect();
        let mut target = (0..counts.len()).collect::<Vec<_>>();
        for s in small {
            let mean = mean_of(&points, &labels, s);
            let nearest = (0..large.len())
                .min_by(|&a, &b| {
                    cosine_distance(&large_means[a], &mean)
                        .total_cmp(&cosine_distance(&large_means[b], &mean))
                })
                .expect("large clusters exist");
            target[s] = large[nearest];
        }
        // Renumber 0.. in the order of the surviving labels.
        let mut renumber = vec![usize::MAX; counts.len()];
        for (i, &l) in large.iter().enumerate() {
            renumber[l] = i;
        }
        for l in labels.iter_mut() {
            *l = renumber[target[*l]];
        }
    }
    let k = labels.iter().max().map_or(1, |m| m + 1);
    let centroids: Vec<Vec<f64>> = (0..k).map(|c| mean_of(&raw, &labels, c)).collect();
    let assigned = embeddings
        .iter()
        .map(|e| match e {
            None => 0,
            Some(v) => {
                let v: Vec<f64> = v.iter().map(|&x| x as f64).collect();
                (0..k)
                    .min_by(|&a, &b| {
                        cosine_distance(&centroids[a], &v)
                            .total_cmp(&cosine_distance(&centroids[b], &v))
                    })
                    .unwrap_or(0)
            }
        })
        .collect();
    (assigned, centroids)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn around(centre: &[f32], n: usize, spread: f32) -> Vec<Option<Vec<f32>>> {
        (0..n)
            .map(|i| {
                let wobble = ((i * 7919) % 13) as f32 / 13.0 - 0.5;
                Some(
                    centre
                        .iter()
                        .enumerate()
                        .map(|(d, &c)| c + spread * wobble * if d % 2 == 0 { 1.0 } else { -1.0 })
                        .collect(),
                )
            })
            .collect()
    }

    #[test]
    fn two_groups_make_two_speakers_and_a_count_is_honoured() {
        let mut e = around(&[1.0, 0.0, 0.2, 0.0], 20, 0.2);
        e.extend(around(&[0.0, 1.0, 0.0, 0.3], 15, 0.2));
        e.push(None);
        let (labels, centroids) = cluster(&e, THRESHOLD, SpeakerCount::default());
        assert_eq!(centroids.len(), 2);
        assert!(labels[..20].iter().all(|&l| l == labels[0]));
        assert!(labels[20..35].iter().all(|&l| l == labels[20]));
        assert_ne!(labels[0], labels[20]);
        assert_eq!(labels[35], 0, "a missing embedding");
        let one = SpeakerCount {
            exactly: Some(1),
            ..Default::default()
        };
        assert_eq!(cluster(&e, THRESHOLD, one).1.len(), 1);
        let three = SpeakerCount {
            exactly: Some(3),
            ..Default::default()
        };
        assert_eq!(cluster(&e, THRESHOLD, three).1.len(), 3);
    }

    #[test]
    fn a_few_stray_points_join_the_nearest_speaker() {
        let mut e = around(&[1.0, 0.0, 0.0], 30, 0.1);
        e.extend(around(&[0.0, 0.0, 1.0], 30, 0.1));
        e.push(Some(vec![0.9, 0.6, 0.1]));
        let (labels, centroids) = cluster(&e, THRESHOLD, SpeakerCount::default());
        assert_eq!(centroids.len(), 2);
        assert_eq!(labels[60], labels[0]);
    }

    #[test]
    fn nothing_or_one_embedding_is_one_speaker() {
        assert_eq!(
            cluster(&[None, None], THRESHOLD, SpeakerCount::default()).0,
            vec![0, 0]
        );
        let (l, c) = cluster(&[Some(vec![1.0, 2.0])], THRESHOLD, SpeakerCount::default());
        assert_eq!((l, c.len()), (vec![0], 1));
    }
}

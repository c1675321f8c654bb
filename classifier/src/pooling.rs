//! Turning an encoder's token states into one sentence vector. Pure.

/// Mean of the token states the attention mask keeps: what sentence
/// transformers (all-MiniLM-L6-v2 among them) were trained with. `hidden`
/// is `[batch, seq, dim]`, row-major; `mask` is `[batch, seq]`.
pub fn mean_pool(
    hidden: &[f32],
    mask: &[i64],
    batch: usize,
    seq: usize,
    dim: usize,
) -> Vec<Vec<f32>> {
    (0..batch)
        .map(|b| {
            let mut sum = vec![0f32; dim];
            let mut kept = 0f32;
            for t in 0..seq {
                if mask[b * seq + t] == 0 {
                    continue;
                }
                kept += 1.0;
                let row = &hidden[(b * seq + t) * dim..(b * seq + t + 1) * dim];
                for (s, h) in sum.iter_mut().zip(row) {
                    *s += h;
                }
            }
            let scale = 1.0 / kept.max(1.0);
            sum.iter_mut().for_each(|s| *s *= scale);
            sum
        })
        .collect()
}

/// Word pieces at each end of a prompt that [`segment_pool`] averages on
/// their own.
pub const SEGMENT_EDGE: usize = 8;

/// Three unit vectors end to end: the mean of every kept token (the same
/// vector [`mean_pool`] gives, so routes read the first `dim` numbers), then
/// the mean of the first `edge` word pieces after `[CLS]`, then of the last
/// `edge` before `[SEP]`. Why: a mean over a pasted article is mostly the
/// article; the request ("Summarize this…", "…translate the above") sits at
/// an end, and these two parts let a linear head weigh it on its own. The
/// token states are contextual, so an end segment still knows what follows.
pub fn segment_pool(
    hidden: &[f32],
    mask: &[i64],
    batch: usize,
    seq: usize,
    dim: usize,
    edge: usize,
) -> Vec<Vec<f32>> {
    (0..batch)
        .map(|b| {
            let kept = (0..seq).filter(|t| mask[b * seq + t] != 0).count();
            let row = |t: usize| &hidden[(b * seq + t) * dim..(b * seq + t + 1) * dim];
            // Word pieces between [CLS] (0) and [SEP] (kept - 1); a prompt
            // too short for an end segment uses every kept token instead.
            let inner = 1..kept.saturating_sub(1).max(1);
            let ranges = [
                0..kept,
                inner.start..inner.end.min(inner.start + edge),
                inner.end.saturating_sub(edge).max(inner.start)..inner.end,
            ];
            let mut out = Vec::with_capacity(3 * dim);
            for range in ranges {
                let range = if range.is_empty() { 0..kept } else { range };
                let mut sum = vec![0f32; dim];
                for t in range.clone() {
                    for (s, h) in sum.iter_mut().zip(row(t)) {
                        *s += h;
                    }
                }
                let scale = 1.0 / (range.len().max(1) as f32);
                sum.iter_mut().for_each(|s| *s *= scale);
                l2_normalize(&mut sum);
                out.extend(sum);
            }
            out
        })
        .collect()
}

/// Scale to unit length so that a dot product is a cosine similarity.
pub fn l2_normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 1e-12 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}

pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    // Eight independent sums let the compiler use vector lanes (a single
    // running sum has to be added in order).
    let mut lanes = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            lanes[i] += x[i] * y[i];
        }
    }
    lanes.iter().sum::<f32>() + tail
}

/// Softmax, stable against large logits.
pub fn softmax(logits: &mut [f32]) {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut total = 0.0;
    for l in logits.iter_mut() {
        *l = (*l - max).exp();
        total += *l;
    }
    if total > 0.0 {
        logits.iter_mut().for_each(|l| *l /= total);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_pool_ignores_padding() {
        // Two sequences of length 3, dim 2; the second has one pad token.
        let hidden = [1., 2., 3., 4., 5., 6., 10., 10., 20., 20., 99., 99.];
        let mask = [1, 1, 1, 1, 1, 0];
        let pooled = mean_pool(&hidden, &mask, 2, 3, 2);
        assert_eq!(pooled, vec![vec![3., 4.], vec![15., 15.]]);
    }

    #[test]
    fn segment_pool_reads_the_ends_apart() {
        // One sequence: [CLS] a b c d [SEP] pad, dim 2, edge 2.
        let hidden = [9., 9., 1., 0., 1., 0., 0., 1., 0., 1., 5., 5., 7., 7.];
        let mask = [1, 1, 1, 1, 1, 1, 0];
        let v = &segment_pool(&hidden, &mask, 1, 7, 2, 2)[0];
        assert_eq!(v.len(), 6);
        let mut mean = mean_pool(&hidden, &mask, 1, 7, 2).remove(0);
        l2_normalize(&mut mean);
        assert_eq!(&v[..2], &mean[..]);
        assert_eq!(&v[2..4], &[1., 0.]); // a, b
        assert_eq!(&v[4..], &[0., 1.]); // c, d
                                        // [CLS] x [SEP]: both ends are x.
        let one = &segment_pool(&[1., 0., 0., 1., 1., 1.], &[1, 1, 1], 1, 3, 2, 8)[0];
        assert_eq!((&one[2..4], &one[4..]), (&[0., 1.][..], &[0., 1.][..]));
        // [CLS] [SEP] alone: the ends fall back to the whole sequence.
        let empty = &segment_pool(&[1., 0., 0., 1.], &[1, 1], 1, 2, 2, 8)[0];
        assert_eq!((&empty[2..4], &empty[4..]), (&empty[..2], &empty[..2]));
    }

    #[test]
    fn dot_matches_the_plain_sum() {
        let a: Vec<f32> = (0..37).map(|i| i as f32 * 0.5).collect();
        let b: Vec<f32> = (0..37).map(|i| 1.0 - i as f32 * 0.1).collect();
        let plain: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert!((dot(&a, &b) - plain).abs() < 1e-3);
        assert_eq!(dot(&[], &[]), 0.0);
    }

    #[test]
    fn normalize_and_softmax() {
        let mut v = [3., 4.];
        l2_normalize(&mut v);
        assert_eq!(v, [0.6, 0.8]);
        let mut zero = [0., 0.];
        l2_normalize(&mut zero);
        assert_eq!(zero, [0., 0.]);
        let mut l = [1000., 1000.];
        softmax(&mut l);
        assert_eq!(l, [0.5, 0.5]);
    }
}

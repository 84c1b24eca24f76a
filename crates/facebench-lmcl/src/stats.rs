//! Angular geometry of labelled features: the numbers the CosFace toy figure is about
//! (how tight each class is on the sphere, and how much empty angle separates classes).

use rayon::prelude::*;

use crate::error::input;
use crate::Result;

/// Angles of one class, in degrees.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ClassAngles {
    pub count: usize,
    /// Mean angle between the class's features and the class's mean direction.
    pub spread_deg: f64,
    /// Smallest angle between a feature of this class and a feature of any other class:
    /// the empty angular gap around the class (0 when classes touch or overlap).
    pub gap_deg: f64,
    /// Angle between the class's mean direction and the nearest other class's.
    pub nearest_centre_deg: f64,
}

/// [`ClassAngles`] per class (index = label) and their means over classes (spread: over
/// samples).
#[derive(Clone, Debug, PartialEq)]
pub struct AngularStats {
    /// Mean over all samples of the angle to their class's mean direction.
    pub mean_spread_deg: f64,
    /// Mean over classes of `gap_deg`.
    pub mean_gap_deg: f64,
    /// Mean over classes of `nearest_centre_deg`.
    pub mean_nearest_centre_deg: f64,
    /// Mean over samples of (angle to the nearest other class centre) minus (angle to the
    /// own class centre): the angular decision margin the features realise (negative for a
    /// sample nearer another class's centre). Unlike the gap, one outlier barely moves it.
    pub mean_margin_deg: f64,
    /// Labels without samples have `count == 0` and NaN angles and are left out of the means.
    pub per_class: Vec<ClassAngles>,
}

fn angle_deg(cos: f64) -> f64 {
    cos.clamp(-1.0, 1.0).acos().to_degrees()
}

/// Computes [`AngularStats`] for `n x dim` features (any norm; directions are used) with
/// labels `0..k`. Needs at least two non-empty classes. The gap is an all-pairs minimum,
/// `O(n² dim)`, parallel over rows.
pub fn angular_stats(features: &[f32], dim: usize, labels: &[usize]) -> Result<AngularStats> {
    if dim == 0 || !features.len().is_multiple_of(dim) || features.len() / dim != labels.len() {
        return input(format!("{} values of dimension {dim} do not match {} labels", features.len(), labels.len()));
    }
    let n = labels.len();
    let mut unit = Vec::with_capacity(features.len());
    for (i, row) in features.chunks(dim).enumerate() {
        let norm = row.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>().sqrt();
        if !(norm.is_finite() && norm > 0.0) {
            return input(format!("feature row {i} has norm {norm}: no direction"));
        }
        unit.extend(row.iter().map(|&v| f64::from(v) / norm));
    }
    let k = labels.iter().max().map_or(0, |m| m + 1);
    let mut counts = vec![0usize; k];
    let mut centres = vec![0.0f64; k * dim];
    for (i, &c) in labels.iter().enumerate() {
        counts[c] += 1;
        for (s, v) in centres[c * dim..(c + 1) * dim].iter_mut().zip(&unit[i * dim..(i + 1) * dim]) {
            *s += v;
        }
    }
    if counts.iter().filter(|&&c| c > 0).count() < 2 {
        return input("angular statistics need at least two classes with samples");
    }
    for c in 0..k {
        let row = &mut centres[c * dim..(c + 1) * dim];
        let norm = row.iter().map(|v| v * v).sum::<f64>().sqrt();
        if counts[c] > 0 && norm == 0.0 {
            return input(format!("class {c}: its features cancel out, no mean direction"));
        }
        row.iter_mut().for_each(|v| *v /= norm.max(f64::MIN_POSITIVE));
    }
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
    let mut spread = vec![0.0f64; k];
    let mut margin = 0.0;
    for (i, &c) in labels.iter().enumerate() {
        let ui = &unit[i * dim..(i + 1) * dim];
        let own = angle_deg(dot(ui, &centres[c * dim..(c + 1) * dim]));
        spread[c] += own;
        let other = (0..k)
            .filter(|&o| o != c && counts[o] > 0)
            .map(|o| dot(ui, &centres[o * dim..(o + 1) * dim]))
            .fold(f64::NEG_INFINITY, f64::max);
        margin += angle_deg(other) - own;
    }
    // For each sample, the largest cosine to a sample of another class.
    let best_other: Vec<f64> = (0..n)
        .into_par_iter()
        .map(|i| {
            let ui = &unit[i * dim..(i + 1) * dim];
            (0..n)
                .filter(|&j| labels[j] != labels[i])
                .map(|j| dot(ui, &unit[j * dim..(j + 1) * dim]))
                .fold(f64::NEG_INFINITY, f64::max)
        })
        .collect();
    let mut max_cos = vec![f64::NEG_INFINITY; k];
    for (i, &c) in labels.iter().enumerate() {
        max_cos[c] = max_cos[c].max(best_other[i]);
    }
    let per_class: Vec<ClassAngles> = (0..k)
        .map(|c| {
            if counts[c] == 0 {
                return ClassAngles { count: 0, spread_deg: f64::NAN, gap_deg: f64::NAN, nearest_centre_deg: f64::NAN };
            }
            let nearest = (0..k)
                .filter(|&o| o != c && counts[o] > 0)
                .map(|o| dot(&centres[c * dim..(c + 1) * dim], &centres[o * dim..(o + 1) * dim]))
                .fold(f64::NEG_INFINITY, f64::max);
            ClassAngles {
                count: counts[c],
                spread_deg: spread[c] / counts[c] as f64,
                gap_deg: angle_deg(max_cos[c]),
                nearest_centre_deg: angle_deg(nearest),
            }
        })
        .collect();
    let present: Vec<&ClassAngles> = per_class.iter().filter(|c| c.count > 0).collect();
    let m = present.len() as f64;
    Ok(AngularStats {
        mean_spread_deg: spread.iter().sum::<f64>() / n as f64,
        mean_gap_deg: present.iter().map(|c| c.gap_deg).sum::<f64>() / m,
        mean_nearest_centre_deg: present.iter().map(|c| c.nearest_centre_deg).sum::<f64>() / m,
        mean_margin_deg: margin / n as f64,
        per_class,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn circle(degs: &[f64]) -> Vec<f32> {
        degs.iter().flat_map(|d| [d.to_radians().cos() as f32, d.to_radians().sin() as f32]).collect()
    }

    /// Two arcs on the circle: class 0 at 0°, ±10°; class 1 at 90°, 100°, 110°.
    #[test]
    fn two_arcs_give_the_hand_computed_angles() {
        let f = circle(&[-10.0, 0.0, 10.0, 90.0, 100.0, 110.0]);
        let s = angular_stats(&f, 2, &[0, 0, 0, 1, 1, 1]).unwrap();
        let close = |a: f64, b: f64| (a - b).abs() < 1e-4;
        // Class 0 centre at 0°, spreads 10, 0, 10; class 1 centre at 100°, spreads 10, 0, 10.
        assert!(close(s.per_class[0].spread_deg, 20.0 / 3.0), "{s:?}");
        assert!(close(s.mean_spread_deg, 20.0 / 3.0));
        // Nearest cross-class pair: 10° and 90° -> 80°.
        assert!(close(s.per_class[0].gap_deg, 80.0) && close(s.per_class[1].gap_deg, 80.0));
        assert!(close(s.mean_gap_deg, 80.0));
        assert!(close(s.mean_nearest_centre_deg, 100.0));
        // Margins: class 0 samples at -10, 0, 10 -> (110-10, 100-0, 90-10); class 1 mirrored.
        assert!(close(s.mean_margin_deg, (100.0 + 100.0 + 80.0) / 3.0), "{}", s.mean_margin_deg);
        // Norms do not matter.
        let scaled: Vec<f32> = f.iter().map(|v| v * 3.0).collect();
        assert_eq!(angular_stats(&scaled, 2, &[0, 0, 0, 1, 1, 1]).unwrap().per_class.len(), 2);
    }

    #[test]
    fn bad_input_is_reported() {
        assert!(angular_stats(&[1.0, 0.0, 0.0, 1.0], 2, &[0, 0]).is_err(), "one class");
        let e = angular_stats(&[1.0, 0.0, 0.0, 0.0], 2, &[0, 1]).unwrap_err().to_string();
        assert!(e.contains("row 1"), "{e}");
        assert!(angular_stats(&[1.0, 0.0, 0.0], 2, &[0, 1]).is_err());
    }
}

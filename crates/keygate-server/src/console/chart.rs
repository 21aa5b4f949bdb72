//! Bar charts drawn on the server as SVG: the geometry is computed here and the template
//! (`templates/console/chart.html`) writes it out, escaping every label like any other value.
//! No script, no library: a chart is part of the page, and a table beside it carries the same
//! figures for whoever does not see it.

/// One bar, placed.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Bar {
    pub x: u32,
    pub y: u32,
    pub w: u32,
    pub h: u32,
    /// What the bar is (a day, a model…), and its value as text.
    pub label: String,
    pub value: String,
    /// Where the label goes.
    pub label_x: u32,
    pub label_y: u32,
    /// Where the value goes.
    pub value_x: u32,
    pub value_y: u32,
}

/// A chart, ready for the template.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Chart {
    pub title: String,
    pub width: u32,
    pub height: u32,
    pub bars: Vec<Bar>,
    /// Rows (a bar per line, labels at the left) or columns (labels under the bars).
    pub rows: bool,
}

const WIDTH: u32 = 720;
const ROW: u32 = 22;
const LABEL_WIDTH: u32 = 220;
const VALUE_WIDTH: u32 = 110;
const COLUMNS_HEIGHT: u32 = 200;
const AXIS: u32 = 34;

fn clip(text: &str, chars: usize) -> String {
    if text.chars().count() <= chars {
        return text.to_owned();
    }
    let mut clipped: String = text.chars().take(chars.saturating_sub(1)).collect();
    clipped.push('…');
    clipped
}

fn share(value: f64, max: f64, span: u32) -> u32 {
    if max <= 0.0 || value <= 0.0 {
        return 0;
    }
    // At least a pixel for anything above zero, so it is seen.
    ((value / max * f64::from(span)).round() as u32).clamp(1, span)
}

impl Chart {
    /// Horizontal bars, one per `(label, value, value as text)`.
    pub fn rows(title: impl Into<String>, points: &[(String, f64, String)]) -> Self {
        let max = points.iter().map(|p| p.1).fold(0.0, f64::max);
        let span = WIDTH - LABEL_WIDTH - VALUE_WIDTH;
        let bars = points
            .iter()
            .zip(0u32..)
            .map(|((label, value, text), i)| {
                let y = i * ROW;
                let w = share(*value, max, span);
                Bar {
                    x: LABEL_WIDTH,
                    y: y + 3,
                    w,
                    h: ROW - 6,
                    label: clip(label, 32),
                    value: text.clone(),
                    label_x: LABEL_WIDTH - 6,
                    label_y: y + ROW - 7,
                    value_x: LABEL_WIDTH + w + 6,
                    value_y: y + ROW - 7,
                }
            })
            .collect::<Vec<_>>();
        Self {
            title: title.into(),
            width: WIDTH,
            height: (bars.len() as u32).max(1) * ROW,
            bars,
            rows: true,
        }
    }

    /// Vertical bars in order (days, say), labels under them.
    pub fn columns(title: impl Into<String>, points: &[(String, f64, String)]) -> Self {
        let max = points.iter().map(|p| p.1).fold(0.0, f64::max);
        let n = u32::try_from(points.len()).unwrap_or(u32::MAX).max(1);
        let slot = (WIDTH / n).max(8);
        let bars = points
            .iter()
            .zip(0u32..)
            .map(|((label, value, text), i)| {
                let h = share(*value, max, COLUMNS_HEIGHT - 16);
                let x = i * slot + slot / 8;
                Bar {
                    x,
                    y: COLUMNS_HEIGHT - h,
                    w: slot - slot / 4,
                    h,
                    label: clip(label, 10),
                    value: text.clone(),
                    label_x: x + (slot - slot / 4) / 2,
                    label_y: COLUMNS_HEIGHT + 16,
                    value_x: x + (slot - slot / 4) / 2,
                    value_y: (COLUMNS_HEIGHT - h).saturating_sub(3).max(10),
                }
            })
            .collect();
        Self {
            title: title.into(),
            width: slot * n,
            height: COLUMNS_HEIGHT + AXIS,
            bars,
            rows: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn points(values: &[f64]) -> Vec<(String, f64, String)> {
        values
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("item {i}"), *v, v.to_string()))
            .collect()
    }

    #[test]
    fn bars_are_proportional_and_the_largest_fills_the_span() {
        let chart = Chart::rows("spend", &points(&[10.0, 5.0, 0.0, 0.01]));
        let span = WIDTH - LABEL_WIDTH - VALUE_WIDTH;
        assert_eq!(chart.bars[0].w, span);
        assert_eq!(chart.bars[1].w, span / 2);
        assert_eq!(chart.bars[2].w, 0, "nothing is drawn for zero");
        assert_eq!(chart.bars[3].w, 1, "a pixel for a little");
        assert_eq!(chart.height, 4 * ROW);
    }

    #[test]
    fn columns_stand_on_one_baseline() {
        let chart = Chart::columns("requests", &points(&[4.0, 2.0]));
        for bar in &chart.bars {
            assert_eq!(bar.y + bar.h, COLUMNS_HEIGHT);
        }
        assert_eq!(chart.bars[0].h, 2 * chart.bars[1].h);
    }

    #[test]
    fn long_labels_are_clipped() {
        let long = vec![("x".repeat(80), 1.0, "1".to_owned())];
        assert_eq!(Chart::rows("t", &long).bars[0].label.chars().count(), 32);
    }
}

//! Page background drawing: coloured bars of line-printer paper and tractor-feed holes.

use crate::content::num;
use crate::geometry::Geometry;
use crate::options::{Background, BarColor};

/// Width of each tractor-feed strip (the holes sit at its centre), 1/2 in.
pub const STRIP: f64 = 36.0;
/// Distance between tractor-feed holes, 1/2 in.
const HOLE_PITCH: f64 = 36.0;
/// Hole radius, 5/64 in.
const HOLE_RADIUS: f64 = 5.625;

/// RGB fill of the bars.
pub fn bar_rgb(color: BarColor) -> (f64, f64, f64) {
    match color {
        BarColor::Green => (0.80, 0.93, 0.80),
        BarColor::Blue => (0.82, 0.89, 0.98),
        BarColor::Gray => (0.88, 0.88, 0.88),
        BarColor::Orange => (1.00, 0.86, 0.70),
        BarColor::Yellow => (1.00, 0.97, 0.70),
    }
}

/// Appends the background operators for one page to `out` (nothing for plain paper).
pub fn draw(out: &mut String, g: &Geometry, bg: &Background) {
    let strip = if bg.tractor_holes { STRIP } else { 0.0 };
    if let Some(color) = bg.bars {
        let (r, gr, b) = bar_rgb(color);
        out.push_str(&format!("q {} {} {} rg\n", num(r), num(gr), num(b)));
        let band = bg.bar_lines.max(1) as usize;
        let x = strip;
        let w = (g.page_width - 2.0 * strip).max(0.0);
        let mut start = 0;
        while start < g.lines_per_page {
            let end = (start + band).min(g.lines_per_page);
            let (top, bottom) = (g.slot_top(start), g.slot_top(end));
            out.push_str(&format!(
                "{} {} {} {} re f\n",
                num(x),
                num(bottom),
                num(w),
                num(top - bottom)
            ));
            start += 2 * band;
        }
        out.push_str("Q\n");
    }
    if bg.tractor_holes {
        holes(out, g);
    }
}

fn holes(out: &mut String, g: &Geometry) {
    let (w, h) = (g.page_width, g.page_height);
    out.push_str("q 0.5 w 0.65 G [3 2] 0 d\n");
    for x in [STRIP, w - STRIP] {
        out.push_str(&format!("{} 0 m {} {} l S\n", num(x), num(x), num(h)));
    }
    out.push_str("[] 0 d 0.93 g 0.6 G\n");
    let mut y = h - HOLE_PITCH / 2.0;
    while y > HOLE_RADIUS {
        for cx in [STRIP / 2.0, w - STRIP / 2.0] {
            circle(out, cx, y, HOLE_RADIUS);
        }
        y -= HOLE_PITCH;
    }
    out.push_str("Q\n");
}

/// A filled and stroked circle made of four Bézier curves.
fn circle(out: &mut String, cx: f64, cy: f64, r: f64) {
    let k = 0.5523 * r;
    let p = |x: f64, y: f64| format!("{} {}", num(x), num(y));
    out.push_str(&format!("{} m\n", p(cx + r, cy)));
    out.push_str(&format!(
        "{} {} {} c\n",
        p(cx + r, cy + k),
        p(cx + k, cy + r),
        p(cx, cy + r)
    ));
    out.push_str(&format!(
        "{} {} {} c\n",
        p(cx - k, cy + r),
        p(cx - r, cy + k),
        p(cx - r, cy)
    ));
    out.push_str(&format!(
        "{} {} {} c\n",
        p(cx - r, cy - k),
        p(cx - k, cy - r),
        p(cx, cy - r)
    ));
    out.push_str(&format!(
        "{} {} {} c B\n",
        p(cx + k, cy - r),
        p(cx + r, cy - k),
        p(cx + r, cy)
    ));
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::options::Options;

    #[test]
    fn bars_alternate() {
        let g = Geometry::new(&Options::default()).unwrap(); // 60 lines
        let mut out = String::new();
        let bg = Background {
            bars: Some(BarColor::Green),
            bar_lines: 3,
            tractor_holes: false,
        };
        draw(&mut out, &g, &bg);
        assert_eq!(out.matches(" re f").count(), 10);
        assert!(out.starts_with("q 0.8 0.93 0.8 rg"));
    }

    #[test]
    fn holes_on_both_edges() {
        let g = Geometry::new(&Options::default()).unwrap(); // 11 in tall
        let mut out = String::new();
        let bg = Background {
            bars: None,
            bar_lines: 3,
            tractor_holes: true,
        };
        draw(&mut out, &g, &bg);
        assert_eq!(out.matches(" c B").count(), 22 * 2);
        let mut plain = String::new();
        draw(&mut plain, &g, &Background::default());
        assert!(plain.is_empty());
    }
}

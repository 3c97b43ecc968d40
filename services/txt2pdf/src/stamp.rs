//! A calendar date and time handed in by the caller for headers, footers and document info
//! (the layout never reads a clock).

use crate::error::Txt2PdfError;

/// A civil date and time (no time zone; shown as given, written to the PDF as UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    year: i32,
    month: u8,
    day: u8,
    hour: u8,
    minute: u8,
    second: u8,
}

fn days_in_month(year: i32, month: u8) -> u8 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        _ => 0,
    }
}

impl Stamp {
    /// A checked date and time; `None` if it is not a real calendar time in years 1..=9999.
    pub fn new(year: i32, month: u8, day: u8, hour: u8, minute: u8, second: u8) -> Option<Self> {
        let ok = (1..=9999).contains(&year)
            && (1..=12).contains(&month)
            && day >= 1
            && day <= days_in_month(year, month)
            && hour < 24
            && minute < 60
            && second < 60;
        ok.then_some(Self {
            year,
            month,
            day,
            hour,
            minute,
            second,
        })
    }

    /// Parses `YYYY-MM-DD`, `YYYY-MM-DDTHH:MM` or `YYYY-MM-DDTHH:MM:SS` (a space may replace `T`).
    pub fn parse(s: &str) -> Result<Self, Txt2PdfError> {
        let bad = || Txt2PdfError::InvalidDateTime(s.to_string());
        let t = s.trim();
        let (date, time) = match t.split_once(['T', ' ']) {
            Some((d, tm)) => (d, Some(tm)),
            None => (t, None),
        };
        let num = |p: Option<&str>| p.and_then(|v| v.parse::<u32>().ok()).ok_or_else(bad);
        let mut d = date.split('-');
        let (y, m, dd) = (num(d.next())?, num(d.next())?, num(d.next())?);
        if d.next().is_some() {
            return Err(bad());
        }
        let (mut hh, mut mi, mut ss) = (0, 0, 0);
        if let Some(tm) = time {
            let mut p = tm.split(':');
            hh = num(p.next())?;
            mi = num(p.next())?;
            if let Some(sec) = p.next() {
                ss = num(Some(sec))?;
            }
            if p.next().is_some() {
                return Err(bad());
            }
        }
        let small = |v: u32| u8::try_from(v).map_err(|_| bad());
        let year = i32::try_from(y).map_err(|_| bad())?;
        Self::new(
            year,
            small(m)?,
            small(dd)?,
            small(hh)?,
            small(mi)?,
            small(ss)?,
        )
        .ok_or_else(bad)
    }

    /// The UTC date and time `secs` seconds after 1970-01-01T00:00:00 (for callers at the edge
    /// that read the system clock).
    pub fn from_unix_seconds(secs: i64) -> Option<Self> {
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400);
        // Civil-from-days (proleptic Gregorian calendar).
        let z = days.checked_add(719_468)?;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);
        Self::new(
            i32::try_from(year).ok()?,
            u8::try_from(month).ok()?,
            u8::try_from(day).ok()?,
            u8::try_from(rem / 3600).ok()?,
            u8::try_from(rem % 3600 / 60).ok()?,
            u8::try_from(rem % 60).ok()?,
        )
    }

    /// `YYYY-MM-DD`, what `&D` shows.
    pub fn date_text(&self) -> String {
        format!("{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }

    /// `HH:MM`, what `&T` shows.
    pub fn time_text(&self) -> String {
        format!("{:02}:{:02}", self.hour, self.minute)
    }

    /// PDF date string `D:YYYYMMDDHHmmSSZ`.
    pub fn pdf_date(&self) -> String {
        format!(
            "D:{:04}{:02}{:02}{:02}{:02}{:02}Z",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_formats() {
        let s = Stamp::parse("2024-02-29T13:05:09").unwrap();
        assert_eq!(s.date_text(), "2024-02-29");
        assert_eq!(s.time_text(), "13:05");
        assert_eq!(s.pdf_date(), "D:20240229130509Z");
        assert_eq!(Stamp::parse("2024-01-31").unwrap().time_text(), "00:00");
        assert_eq!(
            Stamp::parse("2024-01-31 08:30").unwrap().time_text(),
            "08:30"
        );
        for bad in [
            "2023-02-29",
            "2024-13-01",
            "2024-01-01T24:00",
            "x",
            "",
            "2024-1-1-1",
            "99999-1-1",
        ] {
            assert!(Stamp::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn unix_seconds() {
        assert_eq!(
            Stamp::from_unix_seconds(0).unwrap().pdf_date(),
            "D:19700101000000Z"
        );
        assert_eq!(
            Stamp::from_unix_seconds(951_782_400).unwrap().date_text(),
            "2000-02-29"
        );
        assert_eq!(
            Stamp::from_unix_seconds(1_700_000_000).unwrap().pdf_date(),
            "D:20231114221320Z"
        );
        assert!(Stamp::from_unix_seconds(i64::MAX).is_none());
        assert!(Stamp::from_unix_seconds(i64::MIN).is_none());
    }
}

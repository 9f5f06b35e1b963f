//! Daily price series: the one input format of the project, validated on load.
//!
//! A series file has the columns `date,open,high,low,close,adj_close,volume`
//! (the format of the shared benchmark data). A column may be empty on every
//! row when the source lacks it; the forecasting target is `adj_close` when
//! every row has one and `close` otherwise (PROTOCOL §1.3). Every problem is
//! reported with the file, the line and what is wrong, because a silently
//! "repaired" price file is how look-ahead and split bugs get in.

use std::fmt;
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

/// The columns every price file has, in order.
pub const COLUMNS: [&str; 7] = [
    "date",
    "open",
    "high",
    "low",
    "close",
    "adj_close",
    "volume",
];

/// Where a problem was found: a file (or other source) and a 1-based line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub source: String,
    pub line: Option<u64>,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}", self.source),
            None => write!(f, "{}", self.source),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SeriesError {
    #[error("{0}: cannot read the file: {1}")]
    Io(String, #[source] std::io::Error),
    #[error("{at}: {problem}")]
    Invalid { at: Location, problem: String },
    #[error("{0}: no price files (*.csv) in this folder")]
    EmptyFolder(String),
}

impl SeriesError {
    fn invalid(source: &str, line: Option<u64>, problem: impl Into<String>) -> Self {
        SeriesError::Invalid {
            at: Location {
                source: source.to_owned(),
                line,
            },
            problem: problem.into(),
        }
    }
}

/// One daily bar: a row of a price file.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Bar {
    pub date: NaiveDate,
    pub open: Option<f64>,
    pub high: Option<f64>,
    pub low: Option<f64>,
    pub close: f64,
    pub adj_close: Option<f64>,
    pub volume: Option<f64>,
}

impl Bar {
    /// A bar with a close and nothing else, as an index file or a test has.
    pub fn close_only(date: NaiveDate, close: f64) -> Self {
        Bar {
            date,
            open: None,
            high: None,
            low: None,
            close,
            adj_close: None,
            volume: None,
        }
    }
}

/// A validated daily series, ascending by date with unique dates, and the
/// symbol's news sentiment by day where there is any.
#[derive(Debug, Clone, PartialEq)]
pub struct PriceSeries {
    pub name: String,
    pub bars: Vec<Bar>,
    /// Ascending, unique days; empty without a sentiment file.
    pub sentiment: Vec<DailySentiment>,
}

/// One day's news sentiment for a ticker (`curated/<symbol>.sentiment.csv`).
#[derive(Debug, Clone, PartialEq)]
pub struct DailySentiment {
    pub date: NaiveDate,
    /// Relevance-weighted mean of the ticker sentiment scores (−1 bearish … 1 bullish).
    pub score: f64,
    pub articles: usize,
}

/// Which column the forecasting target was taken from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetColumn {
    AdjClose,
    Close,
}

impl PriceSeries {
    /// Builds a series from bars, checking the invariants every consumer relies on.
    pub fn new(name: impl Into<String>, bars: Vec<Bar>) -> Result<Self, SeriesError> {
        let name = name.into();
        validate(&name, &bars, |i| Some(i as u64 + 2))?;
        Ok(PriceSeries {
            name,
            bars,
            sentiment: Vec::new(),
        })
    }

    /// Reads and validates one price file; the series is named after the file stem.
    pub fn from_csv_path(path: &Path) -> Result<Self, SeriesError> {
        let display = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|e| SeriesError::Io(display.clone(), e))?;
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| display.clone());
        Self::from_csv_bytes(&name, &display, &bytes)
    }

    /// Parses and validates price CSV from memory; `source` names it in errors.
    pub fn from_csv_bytes(name: &str, source: &str, bytes: &[u8]) -> Result<Self, SeriesError> {
        let (bars, lines) = parse_bars(source, bytes)?;
        validate(source, &bars, |i| Some(lines[i]))?;
        Ok(PriceSeries {
            name: name.to_owned(),
            bars,
            sentiment: Vec::new(),
        })
    }

    /// The same series with the symbol's news sentiment attached.
    pub fn with_sentiment(self, sentiment: Vec<DailySentiment>) -> Self {
        PriceSeries { sentiment, ..self }
    }

    pub fn len(&self) -> usize {
        self.bars.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bars.is_empty()
    }

    /// The column the target comes from (PROTOCOL §1.3).
    pub fn target_column(&self) -> TargetColumn {
        if self.bars.iter().all(|b| b.adj_close.is_some()) {
            TargetColumn::AdjClose
        } else {
            TargetColumn::Close
        }
    }

    /// The forecasting target `y`: adj_close if every row has it, else close.
    pub fn target(&self) -> Vec<f64> {
        match self.target_column() {
            TargetColumn::AdjClose => self.bars.iter().filter_map(|b| b.adj_close).collect(),
            TargetColumn::Close => self.bars.iter().map(|b| b.close).collect(),
        }
    }

    pub fn dates(&self) -> Vec<NaiveDate> {
        self.bars.iter().map(|b| b.date).collect()
    }

    /// Writes the series in the same CSV format it is read from.
    pub fn to_csv(&self) -> String {
        let mut out = COLUMNS.join(",");
        out.push('\n');
        let cell = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
        for b in &self.bars {
            out.push_str(&format!(
                "{},{},{},{},{},{},{}\n",
                b.date,
                cell(b.open),
                cell(b.high),
                cell(b.low),
                b.close,
                cell(b.adj_close),
                cell(b.volume)
            ));
        }
        out
    }
}

/// Parses price CSV into bars without checking order or values (the
/// quality step reports every problem of a stored file rather than the
/// first); returns each bar's 1-based line.
pub fn parse_bars(source: &str, bytes: &[u8]) -> Result<(Vec<Bar>, Vec<u64>), SeriesError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(bytes);
    check_header(source, &mut reader)?;
    let rows = reader
        .records()
        .map(|record| RawRow::parse(source, record))
        .collect::<Result<Vec<RawRow>, SeriesError>>()?;
    if rows.is_empty() {
        return Err(SeriesError::invalid(source, None, "the file has no rows"));
    }
    let present = present_columns(source, &rows)?;
    let bars = rows.iter().map(|row| row.bar(&present)).collect();
    let lines = rows.iter().map(|row| row.line).collect();
    Ok((bars, lines))
}

fn check_header(source: &str, reader: &mut csv::Reader<&[u8]>) -> Result<(), SeriesError> {
    let headers = reader
        .headers()
        .map_err(|e| SeriesError::invalid(source, Some(1), format!("unreadable header: {e}")))?;
    let header: Vec<&str> = headers.iter().map(str::trim).collect();
    if header != COLUMNS {
        return Err(SeriesError::invalid(
            source,
            Some(1),
            format!(
                "header should be `{}`, but is `{}`",
                COLUMNS.join(","),
                header.join(",")
            ),
        ));
    }
    Ok(())
}

/// A row as read: its date, the columns after the date (`None` where the
/// cell is empty) and its 1-based line.
#[derive(Debug)]
struct RawRow {
    date: NaiveDate,
    values: [Option<f64>; 6],
    line: u64,
}

impl RawRow {
    fn parse(
        source: &str,
        record: Result<csv::StringRecord, csv::Error>,
    ) -> Result<RawRow, SeriesError> {
        let record = record.map_err(|e| {
            let line = e.position().map(|p| p.line());
            SeriesError::invalid(source, line, format!("malformed row: {e}"))
        })?;
        let line = record.position().map_or(0, |p| p.line());
        let date_text = record.get(0).unwrap_or("").trim();
        let date = NaiveDate::parse_from_str(date_text, "%Y-%m-%d").map_err(|_| {
            SeriesError::invalid(
                source,
                Some(line),
                format!("date should be YYYY-MM-DD, but is {date_text:?}"),
            )
        })?;
        let mut values = [None; 6];
        for (slot, column) in values.iter_mut().zip(1..COLUMNS.len()) {
            let text = record.get(column).unwrap_or("").trim();
            if !text.is_empty() {
                *slot = Some(parse_value(source, line, COLUMNS[column], text)?);
            }
        }
        Ok(RawRow { date, values, line })
    }

    /// The bar of this row, keeping only the columns present on every row.
    fn bar(&self, present: &[bool; 6]) -> Bar {
        let pick = |column: usize| self.values[column].filter(|_| present[column]);
        Bar {
            date: self.date,
            open: pick(0),
            high: pick(1),
            low: pick(2),
            close: self.values[3].unwrap_or(f64::NAN),
            adj_close: pick(4),
            volume: pick(5),
        }
    }
}

/// A finite number, or an error naming the column and the text.
fn parse_value(source: &str, line: u64, column: &str, text: &str) -> Result<f64, SeriesError> {
    let value: f64 = text.parse().map_err(|_| {
        SeriesError::invalid(
            source,
            Some(line),
            format!("{column} should be a number, but is {text:?}"),
        )
    })?;
    if !value.is_finite() {
        return Err(SeriesError::invalid(
            source,
            Some(line),
            format!("{column} should be finite, but is {text}"),
        ));
    }
    Ok(value)
}

/// Which of the columns after the date are filled on every row. A column
/// is either present on every row or absent on every row; adj_close alone
/// may be partial, which makes `close` the target.
fn present_columns(source: &str, rows: &[RawRow]) -> Result<[bool; 6], SeriesError> {
    let mut present = [true; 6];
    for (column, keep) in present.iter_mut().enumerate() {
        let filled = rows.iter().filter(|r| r.values[column].is_some()).count();
        if filled == rows.len() {
            continue;
        }
        *keep = false;
        let name = COLUMNS[column + 1];
        if name == "close" || (filled > 0 && name != "adj_close") {
            let row = rows
                .iter()
                .position(|r| r.values[column].is_none())
                .unwrap_or(0);
            return Err(SeriesError::invalid(
                source,
                Some(rows[row].line),
                format!("{name} is empty on this row; it must be filled on every row or on none"),
            ));
        }
    }
    Ok(present)
}

/// Checks the invariants of a series: ascending unique dates, positive
/// prices, high/low consistent with open/close, a non-empty target.
fn validate(
    source: &str,
    bars: &[Bar],
    line_of: impl Fn(usize) -> Option<u64>,
) -> Result<(), SeriesError> {
    if bars.is_empty() {
        return Err(SeriesError::invalid(source, None, "the series has no rows"));
    }
    match bar_problems(bars).into_iter().next() {
        Some(p) => Err(SeriesError::invalid(source, line_of(p.index), p.detail)),
        None => Ok(()),
    }
}

/// What can be wrong with a bar on its own or against the bar before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemKind {
    DuplicateDate,
    Order,
    NonPositive,
    HighLow,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BarProblem {
    pub index: usize,
    pub kind: ProblemKind,
    pub detail: String,
}

/// Every problem of every bar: dates ascending and unique, positive prices,
/// high/low consistent with open/close.
pub fn bar_problems(bars: &[Bar]) -> Vec<BarProblem> {
    let mut problems = Vec::new();
    for (index, bar) in bars.iter().enumerate() {
        let mut problem = |kind, detail: String| {
            problems.push(BarProblem {
                index,
                kind,
                detail,
            })
        };
        if index > 0 {
            let previous = bars[index - 1].date;
            if bar.date == previous {
                problem(
                    ProblemKind::DuplicateDate,
                    format!("date {} appears twice", bar.date),
                );
            } else if bar.date < previous {
                problem(
                    ProblemKind::Order,
                    format!("dates must ascend, but {} follows {previous}", bar.date),
                );
            }
        }
        let prices = [
            ("open", bar.open),
            ("high", bar.high),
            ("low", bar.low),
            ("close", Some(bar.close)),
            ("adj_close", bar.adj_close),
        ];
        for (name, value) in prices {
            if let Some(v) = value
                && !(v > 0.0 && v.is_finite())
            {
                problem(
                    ProblemKind::NonPositive,
                    format!("{name} should be positive, but is {v}"),
                );
            }
        }
        if let Some(volume) = bar.volume
            && !(volume >= 0.0 && volume.is_finite())
        {
            problem(
                ProblemKind::NonPositive,
                format!("volume should be non-negative, but is {volume}"),
            );
        }
        if let (Some(high), Some(low)) = (bar.high, bar.low) {
            if low > high {
                problem(
                    ProblemKind::HighLow,
                    format!("low {low} is above high {high}"),
                );
            }
            for (name, value) in [("open", bar.open), ("close", Some(bar.close))] {
                if let Some(v) = value
                    && (v > high || v < low)
                {
                    problem(
                        ProblemKind::HighLow,
                        format!("{name} {v} lies outside the day's range [{low}, {high}]"),
                    );
                }
            }
        }
    }
    problems
}

/// Reads `curated/<symbol>.sentiment.csv` (`date,score,articles`, ascending
/// unique dates), as ingestion writes it.
pub fn parse_sentiment_csv(source: &str, bytes: &[u8]) -> Result<Vec<DailySentiment>, SeriesError> {
    let text = String::from_utf8_lossy(bytes);
    let mut lines = text.lines().enumerate();
    let bad =
        |line: usize, problem: String| SeriesError::invalid(source, Some(line as u64 + 1), problem);
    match lines.next() {
        Some((_, header)) if header.trim() == "date,score,articles" => {}
        other => {
            return Err(bad(
                0,
                format!(
                    "the header should be date,score,articles, but is {:?}",
                    other.map(|(_, h)| h).unwrap_or("")
                ),
            ));
        }
    }
    let mut days: Vec<DailySentiment> = Vec::new();
    for (i, line) in lines {
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split(',').collect();
        let [date, score, articles] = fields[..] else {
            return Err(bad(i, format!("expected 3 fields, found {}", fields.len())));
        };
        let date = NaiveDate::parse_from_str(date.trim(), "%Y-%m-%d")
            .map_err(|e| bad(i, format!("date {date:?}: {e}")))?;
        let score: f64 = score
            .trim()
            .parse()
            .ok()
            .filter(|s: &f64| s.is_finite() && s.abs() <= 1.0)
            .ok_or_else(|| bad(i, format!("score {score:?} is not a number in [-1, 1]")))?;
        let articles: usize = articles
            .trim()
            .parse()
            .map_err(|_| bad(i, format!("articles {articles:?} is not a count")))?;
        if days.last().is_some_and(|d| d.date >= date) {
            return Err(bad(
                i,
                format!("{date} is not after the previous line's date"),
            ));
        }
        days.push(DailySentiment {
            date,
            score,
            articles,
        });
    }
    Ok(days)
}

/// How a symbol's news sentiment file is named beside its price file.
pub const SENTIMENT_SUFFIX: &str = ".sentiment.csv";

/// Loads every `*.csv` price file of a folder, in ascending byte order of
/// file name (PROTOCOL §1.1), each with its `<name>.sentiment.csv` if there
/// is one.
pub fn load_folder(dir: &Path) -> Result<Vec<PriceSeries>, SeriesError> {
    let display = dir.display().to_string();
    let entries = std::fs::read_dir(dir).map_err(|e| SeriesError::Io(display.clone(), e))?;
    let mut paths: Vec<PathBuf> = Vec::new();
    for entry in entries {
        let path = entry
            .map_err(|e| SeriesError::Io(display.clone(), e))?
            .path();
        let sentiment = path.to_string_lossy().ends_with(SENTIMENT_SUFFIX);
        if path.extension().is_some_and(|e| e == "csv") && path.is_file() && !sentiment {
            paths.push(path);
        }
    }
    if paths.is_empty() {
        return Err(SeriesError::EmptyFolder(display));
    }
    paths.sort_by(|a, b| {
        a.file_name()
            .map(|n| n.as_encoded_bytes().to_vec())
            .cmp(&b.file_name().map(|n| n.as_encoded_bytes().to_vec()))
    });
    paths
        .iter()
        .map(|p| {
            let series = PriceSeries::from_csv_path(p)?;
            let news = p.with_file_name(format!("{}{SENTIMENT_SUFFIX}", series.name));
            match std::fs::read(&news) {
                Ok(bytes) => {
                    let days = parse_sentiment_csv(&news.display().to_string(), &bytes)?;
                    Ok(series.with_sentiment(days))
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(series),
                Err(e) => Err(SeriesError::Io(news.display().to_string(), e)),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "date,open,high,low,close,adj_close,volume\n";

    fn parse(body: &str) -> Result<PriceSeries, SeriesError> {
        PriceSeries::from_csv_bytes("T", "t.csv", format!("{HEADER}{body}").as_bytes())
    }

    fn check_err(body: &str, expected: &str) {
        match parse(body) {
            Ok(_) => panic!("expected an error containing {expected:?}"),
            Err(e) => {
                let text = e.to_string();
                assert!(
                    text.contains(expected),
                    "{text:?} should contain {expected:?}"
                );
            }
        }
    }

    #[test]
    fn reads_a_valid_file() {
        let s = parse("2020-01-02,1,2,0.5,1.5,1.4,100\n2020-01-03,1.5,2,1,1.8,1.7,200\n")
            .expect("valid");
        assert_eq!(s.len(), 2);
        assert_eq!(s.target(), vec![1.4, 1.7]);
        assert_eq!(s.target_column(), TargetColumn::AdjClose);
    }

    #[test]
    fn falls_back_to_close_when_adj_close_is_partial() {
        let s =
            parse("2020-01-02,1,2,0.5,1.5,,100\n2020-01-03,1.5,2,1,1.8,1.7,200\n").expect("valid");
        assert_eq!(s.target_column(), TargetColumn::Close);
        assert_eq!(s.target(), vec![1.5, 1.8]);
    }

    #[test]
    fn accepts_a_column_empty_on_every_row() {
        let s = parse("2020-01-02,,,,1.5,1.5,\n2020-01-03,,,,1.8,1.8,\n").expect("valid");
        assert!(
            s.bars
                .iter()
                .all(|b| b.open.is_none() && b.volume.is_none())
        );
    }

    #[test]
    fn names_file_line_and_problem() {
        check_err(
            "2020-01-02,1,2,0.5,1.5,1.4,100\n2020-01-02,1,2,0.5,1.5,1.4,100\n",
            "t.csv:3: date 2020-01-02 appears twice",
        );
        check_err(
            "2020-01-03,1,2,0.5,1.5,1.4,100\n2020-01-02,1,2,0.5,1.5,1.4,100\n",
            "t.csv:3: dates must ascend",
        );
        check_err(
            "2020-01-02,1,2,0.5,-1.5,1.4,100\n",
            "t.csv:2: close should be positive",
        );
        check_err(
            "2020-01-02,1,2,0.5,1.5,0,100\n",
            "adj_close should be positive",
        );
        check_err("2020-01-02,1,1,2,1.5,1.4,100\n", "low 2 is above high 1");
        check_err("2020-01-02,1,2,0.5,2.5,1.4,100\n", "close 2.5 lies outside");
        check_err(
            "2020-01-02,1,2,0.5,abc,1.4,100\n",
            "close should be a number",
        );
        check_err(
            "2020/01/02,1,2,0.5,1.5,1.4,100\n",
            "date should be YYYY-MM-DD",
        );
        check_err("2020-01-02,1,2,0.5,,1.4,100\n", "t.csv:2: close is empty");
        check_err(
            "2020-01-02,1,2,0.5,1.5,1.4,100\n2020-01-03,,2,0.5,1.5,1.4,100\n",
            "t.csv:3: open is empty on this row",
        );
        check_err("2020-01-02,1,2,0.5,1.5,1.4\n", "malformed row");
        check_err("", "no rows");
        check_err("2020-01-02,1,2,0.5,NaN,1.4,100\n", "close should be finite");
    }

    #[test]
    fn rejects_a_wrong_header() {
        let err = PriceSeries::from_csv_bytes("T", "t.csv", b"date,close\n2020-01-02,1\n")
            .expect_err("bad header");
        assert!(err.to_string().starts_with("t.csv:1: header should be"));
    }

    #[test]
    fn round_trips_through_csv() {
        let s = parse("2020-01-02,1,2,0.5,1.5,1.4,100\n2020-01-03,,,,1.8,,\n");
        assert!(s.is_err(), "partial open must be rejected");
        let s = parse("2020-01-02,1,2,0.5,1.5,1.4,100\n2020-01-03,1.5,2,1,1.8,1.7,200\n")
            .expect("valid");
        let again =
            PriceSeries::from_csv_bytes("T", "t.csv", s.to_csv().as_bytes()).expect("valid");
        assert_eq!(s, again);
    }

    #[test]
    fn loads_the_sample_folder_in_byte_order() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/sample");
        let all = load_folder(&dir).expect("sample data is valid");
        let names: Vec<_> = all.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["AAPL", "GOOG", "GSPC", "IBM", "MSFT"]);
        assert_eq!(all[0].len(), 3270);
    }
}

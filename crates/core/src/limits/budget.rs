//! Spending budgets in US dollars, per UTC day or month: the period a moment falls in, when
//! the next one starts, and what has been spent in the current one.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;
use time::{Date, Month, OffsetDateTime, Time};

/// How long a budget lasts before it starts again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BudgetPeriod {
    Day,
    Month,
}

impl BudgetPeriod {
    /// The start of the period `at` falls in, and the start of the next one (UTC).
    pub fn bounds(self, at: SystemTime) -> (SystemTime, SystemTime) {
        let secs = at
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
            .min(253_402_300_799); // the last second of 9999, as far as `time` goes
        let date = OffsetDateTime::from_unix_timestamp(secs as i64)
            .map_or(Date::MIN, OffsetDateTime::date);
        let (start, next) = match self {
            BudgetPeriod::Day => (date, date.next_day().unwrap_or(Date::MAX)),
            BudgetPeriod::Month => {
                let first = date.replace_day(1).unwrap_or(date);
                let next = match first.month() {
                    Month::December => {
                        Date::from_calendar_date(first.year() + 1, Month::January, 1)
                    }
                    m => Date::from_calendar_date(first.year(), m.next(), 1),
                };
                (first, next.unwrap_or(Date::MAX))
            }
        };
        let at_midnight = |d: Date| {
            let ts = d.with_time(Time::MIDNIGHT).assume_utc().unix_timestamp();
            UNIX_EPOCH + Duration::from_secs(u64::try_from(ts).unwrap_or(0))
        };
        (at_midnight(start), at_midnight(next))
    }
}

/// A budget and what has been spent of it in the current period.
#[derive(Debug, Clone)]
pub(crate) struct Spend {
    pub(crate) limit_usd: f64,
    period: BudgetPeriod,
    spent_usd: f64,
    /// The current period's end; spending after it starts from zero.
    ends: SystemTime,
}

impl Spend {
    pub(crate) fn new(limit_usd: f64, period: BudgetPeriod, now: SystemTime) -> Self {
        Self {
            limit_usd,
            period,
            spent_usd: 0.0,
            ends: period.bounds(now).1,
        }
    }

    pub(crate) fn period(&self) -> BudgetPeriod {
        self.period
    }

    fn roll(&mut self, now: SystemTime) {
        if now >= self.ends {
            self.spent_usd = 0.0;
            self.ends = self.period.bounds(now).1;
        }
    }

    /// `Err(when the next period starts)` once the budget is spent.
    pub(crate) fn check(&mut self, now: SystemTime) -> Result<(), SystemTime> {
        self.roll(now);
        if self.spent_usd >= self.limit_usd {
            Err(self.ends)
        } else {
            Ok(())
        }
    }

    pub(crate) fn spend(&mut self, usd: f64, now: SystemTime) {
        self.roll(now);
        if usd.is_finite() && usd > 0.0 {
            self.spent_usd += usd;
        }
    }

    /// What the shared store says is left of the current period's budget.
    pub(crate) fn mirror(&mut self, remaining_usd: f64, now: SystemTime) {
        self.roll(now);
        if remaining_usd.is_finite() {
            self.spent_usd = (self.limit_usd - remaining_usd).max(0.0);
        }
    }

    pub(crate) fn remaining(&mut self, now: SystemTime) -> f64 {
        self.roll(now);
        (self.limit_usd - self.spent_usd).max(0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(http_date: &str) -> SystemTime {
        httpdate::parse_http_date(http_date).unwrap()
    }

    #[test]
    fn days_and_months_begin_at_utc_midnight() {
        let t = at("Thu, 31 Dec 2026 23:59:59 GMT");
        assert_eq!(
            BudgetPeriod::Day.bounds(t),
            (
                at("Thu, 31 Dec 2026 00:00:00 GMT"),
                at("Fri, 01 Jan 2027 00:00:00 GMT")
            )
        );
        assert_eq!(
            BudgetPeriod::Month.bounds(t),
            (
                at("Tue, 01 Dec 2026 00:00:00 GMT"),
                at("Fri, 01 Jan 2027 00:00:00 GMT")
            )
        );
        assert_eq!(
            BudgetPeriod::Month
                .bounds(at("Tue, 29 Feb 2028 12:00:00 GMT"))
                .1,
            at("Wed, 01 Mar 2028 00:00:00 GMT")
        );
    }

    #[test]
    fn a_spent_budget_refuses_until_the_period_rolls_over() {
        let t = at("Mon, 30 Nov 2026 10:00:00 GMT");
        let mut s = Spend::new(1.0, BudgetPeriod::Day, t);
        s.spend(0.6, t);
        assert_eq!(s.check(t), Ok(()));
        s.spend(0.5, t);
        assert_eq!(s.check(t), Err(at("Tue, 01 Dec 2026 00:00:00 GMT")));
        assert_eq!(s.remaining(t), 0.0);
        let next_day = at("Tue, 01 Dec 2026 00:00:00 GMT");
        assert_eq!(s.check(next_day), Ok(()));
        assert_eq!(s.remaining(next_day), 1.0);
    }
}

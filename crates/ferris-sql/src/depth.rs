//! The limit on expression depth (issue #13). DataFusion plans an expression recursively and
//! types each operator by looking at its whole subtree, so planning time grows with the
//! square of an operator chain's length and deep enough trees overflow the stack. Every
//! expression of a query is therefore limited to [`MAX_EXPR_DEPTH`] nested levels — an
//! operator, a parenthesis, a `NOT`, a `CASE` or a function call each add one; a chain
//! `a + b + … + z` of n terms is n - 1 levels deep — and a deeper one is refused, at the place
//! where it goes past the limit, before DataFusion sees it.

use crate::error::SqlError;
use sqlparser::ast::{Expr, Query, Spanned, Visit, Visitor};
use sqlparser::tokenizer::{Span, Token, TokenWithSpan};
use std::ops::ControlFlow;

/// The deepest expression a query may hold.
pub const MAX_EXPR_DEPTH: usize = 1000;

/// Stack of the threads that parse and plan: reserved address space, of which only what
/// the recursion uses is touched.
pub const LARGE_STACK_BYTES: usize = 256 << 20;

/// Runs `f` on a thread with a [`LARGE_STACK_BYTES`] stack (parsing and planning recurse
/// once per nesting level, deeper than a default thread's stack allows in a debug build);
/// on the calling thread if no thread can be started.
pub fn on_large_stack<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    let slot = std::sync::Mutex::new(Some(f));
    let take = || slot.lock().unwrap_or_else(|p| p.into_inner()).take();
    std::thread::scope(|scope| {
        let worker = std::thread::Builder::new()
            .name("ferris-plan".into())
            .stack_size(LARGE_STACK_BYTES)
            .spawn_scoped(scope, || take().map(|f| f()));
        let ran = match worker {
            Ok(handle) => match handle.join() {
                Ok(value) => value,
                Err(panic) => std::panic::resume_unwind(panic),
            },
            Err(_) => None,
        };
        // No thread to be had: run here (shallow input still works).
        match (ran, take()) {
            (Some(value), _) => value,
            (None, Some(f)) => f(),
            (None, None) => panic!("the planning thread ended without a result"),
        }
    })
}

/// The message of an expression past the limit.
pub(crate) fn too_deep() -> String {
    format!(
        "expression nested more than {MAX_EXPR_DEPTH} levels deep (each operator, \
         parenthesis, NOT, CASE or function call is a level; a chain a + b + … of n terms is \
         n - 1 levels): split it, e.g. into IN (…) lists or several queries"
    )
}

struct DepthVisitor {
    depth: usize,
}

impl Visitor for DepthVisitor {
    type Break = Span;

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<Self::Break> {
        self.depth += 1;
        if self.depth > MAX_EXPR_DEPTH {
            return ControlFlow::Break(expr.span());
        }
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, _expr: &Expr) -> ControlFlow<Self::Break> {
        self.depth -= 1;
        ControlFlow::Continue(())
    }
}

/// Refuses a query holding an expression deeper than [`MAX_EXPR_DEPTH`], at the
/// subexpression that goes past it.
pub(crate) fn check_query(query: &Query) -> Result<(), SqlError> {
    match query.visit(&mut DepthVisitor { depth: 0 }) {
        ControlFlow::Continue(()) => Ok(()),
        ControlFlow::Break(span) => Err(SqlError::at(too_deep(), span)),
    }
}

/// The first token at which parentheses, `NOT`s and `CASE`s opened and not yet closed go
/// past [`MAX_EXPR_DEPTH`], if they do: where the parser's own nesting limit is hit (which
/// it may report as another error, having tried an alternative).
pub(crate) fn past_limit(tokens: &[TokenWithSpan]) -> Option<&TokenWithSpan> {
    let mut depth: i64 = 0;
    for t in tokens {
        match &t.token {
            Token::LParen => depth += 1,
            Token::RParen => depth -= 1,
            Token::Word(w) if w.value.eq_ignore_ascii_case("CASE") => depth += 1,
            Token::Word(w) if w.value.eq_ignore_ascii_case("END") => depth -= 1,
            Token::Word(w) if w.value.eq_ignore_ascii_case("NOT") => depth += 1,
            // A NOT ends with the operand it applies to: count it closed at the next
            // operator boundary is not known here; NOTs stay open, which errs towards
            // reporting depth only when the parser failed anyway.
            _ => {}
        }
        if depth > MAX_EXPR_DEPTH as i64 {
            return Some(t);
        }
    }
    None
}

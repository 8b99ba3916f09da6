//! Segment rules: CEL expressions over the profile's fields, compiled once at startup.
//!
//! Compiling checks every field a rule names against [`Field`] and dry-runs the rule on an
//! empty profile, so a typo or a type error is a config error naming the rule, the line and
//! the column rather than a rule that silently never matches. Each rule records which sources
//! ([`crate::read::fields::source`]) can change its fields; the engine evaluates it only when one of
//! them fired.

use crate::config::analytics::SegmentConfig;
use crate::config::engine::ms;
use crate::read::fields::{source, Field, FieldValue};
use crate::read::view::View;
use crate::rules::fast::{self, Node};
use crate::spec::{EngineSpec, SpecError};
use cel::common::ast::{EntryExpr, Expr, IdedExpr};
use cel::common::types::{CelBool, CelDouble, CelInt, CelString};
use cel::common::value::CowVal;
use cel::context::VariableResolver;
use cel::{Context, Env, Program, Value};
use pulse_events::time::Millis;
use std::sync::Arc;

/// Most rules a configuration may hold: membership is a 64-bit set per customer.
pub const MAX_SEGMENTS: usize = 64;

/// One compiled rule.
#[derive(Debug)]
pub struct SegmentSpec {
    /// Shared with every output that names the segment.
    pub name: Arc<str>,
    pub version: u32,
    /// The CEL source, as configured.
    pub rule: String,
    pub min_dwell: Option<Millis>,
    pub cooldown: Option<Millis>,
    /// Sources whose firing may change the rule's result.
    pub sources: u16,
    program: Program,
    fields: Vec<(String, Field)>,
    /// The rule compiled to [`Node`] when it stays within that subset.
    fast: Option<Node>,
}

/// The compiled rules.
#[derive(Default)]
pub struct Segments {
    env: Arc<Env>,
    pub rules: Vec<SegmentSpec>,
}

impl std::fmt::Debug for Segments {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Segments")
            .field("rules", &self.rules)
            .finish()
    }
}

/// Line and column (1-based) of a byte offset.
fn position(source: &str, offset: usize) -> (usize, usize) {
    let before = &source[..offset.min(source.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// The qualified names (`rfm.segment`) an expression reads, with the expression id where each
/// is written; names bound by comprehension macros are skipped.
fn names(e: &IdedExpr, bound: &mut Vec<String>, out: &mut Vec<(String, u64)>) {
    match &e.expr {
        Expr::Ident(name) => {
            if !bound.contains(name) {
                out.push((name.clone(), e.id));
            }
        }
        Expr::Select(sel) => {
            let mut parts = vec![sel.field.as_str()];
            let mut cur = &sel.operand;
            loop {
                match &cur.expr {
                    Expr::Select(s) if !s.test => {
                        parts.push(&s.field);
                        cur = &s.operand;
                    }
                    Expr::Ident(root) if !sel.test && !bound.contains(root) => {
                        parts.push(root);
                        parts.reverse();
                        out.push((parts.join("."), e.id));
                        return;
                    }
                    _ => break,
                }
            }
            names(&sel.operand, bound, out);
        }
        Expr::Call(c) => {
            if let Some(t) = &c.target {
                names(t, bound, out);
            }
            c.args.iter().for_each(|a| names(a, bound, out));
        }
        Expr::Comprehension(c) => {
            names(&c.iter_range, bound, out);
            let n = bound.len();
            bound.push(c.iter_var.clone());
            bound.extend(c.iter_var2.clone());
            bound.push(c.accu_var.clone());
            for x in [&c.accu_init, &c.loop_cond, &c.loop_step, &c.result] {
                names(x, bound, out);
            }
            bound.truncate(n);
        }
        Expr::List(l) => l.elements.iter().for_each(|x| names(x, bound, out)),
        Expr::Map(m) => m.entries.iter().for_each(|x| match &x.expr {
            EntryExpr::MapEntry(me) => {
                names(&me.key, bound, out);
                names(&me.value, bound, out);
            }
            EntryExpr::StructField(f) => names(&f.value, bound, out),
        }),
        Expr::Struct(s) => s.entries.iter().for_each(|x| {
            if let EntryExpr::StructField(f) = &x.expr {
                names(&f.value, bound, out);
            }
        }),
        Expr::Literal(_) | Expr::Unspecified => {}
    }
}

impl Segments {
    /// Compiles `[[engine.segments]]` against the rest of the compiled spec (its metrics,
    /// windows and funnels name fields). Every problem is reported, each naming its rule.
    pub fn compile(cfgs: &[SegmentConfig], spec: &EngineSpec) -> Result<Self, Vec<SpecError>> {
        let env = Arc::new(Env::stdlib());
        let mut errors = Vec::new();
        let mut rules = Vec::new();
        if cfgs.len() > MAX_SEGMENTS {
            errors.push(SpecError {
                key: "engine.segments".into(),
                message: format!("at most {MAX_SEGMENTS} segments, found {}", cfgs.len()),
            });
        }
        for (i, c) in cfgs.iter().enumerate() {
            let key = format!("engine.segments[{i}] ({})", c.name);
            let mut fail = |message: String| {
                errors.push(SpecError {
                    key: key.clone(),
                    message,
                })
            };
            if c.name.is_empty() {
                fail("name must not be empty".into());
            }
            if cfgs[..i].iter().any(|o| o.name == c.name) {
                fail(format!("duplicate segment name {:?}", c.name));
            }
            let program = match env.compile(&c.rule) {
                Ok(p) => p,
                Err(e) => {
                    for pe in &e.errors {
                        fail(format!(
                            "rule does not compile at line {}, column {}: {}",
                            pe.pos.0, pe.pos.1, pe.msg
                        ));
                    }
                    continue;
                }
            };
            let mut read = Vec::new();
            names(program.expression(), &mut Vec::new(), &mut read);
            let mut fields = Vec::new();
            let mut sources = 0;
            let mut ok = true;
            for (name, id) in read {
                match Field::parse(spec, &name) {
                    Some((f, s)) => {
                        sources |= s;
                        if !fields.iter().any(|(n, _)| *n == name) {
                            fields.push((name, f));
                        }
                    }
                    None => {
                        ok = false;
                        let offset = program.source_info().offset_for(id).map_or(0, |o| o.0);
                        let (line, col) = position(&c.rule, offset as usize);
                        fail(format!(
                            "rule reads unknown field `{name}` at line {line}, column {col}; known fields: {}",
                            Field::known_names()
                        ));
                    }
                }
            }
            let (min_dwell, cooldown) = (c.min_dwell.map(ms), c.cooldown.map(ms));
            if min_dwell.is_some() || cooldown.is_some() {
                sources |= source::HOLD;
            }
            if !ok {
                continue;
            }
            // An empty profile: the compiled form reads field types off it, and a rule that
            // fails on it (comparing a string with a number, say) would fail on every profile.
            let empty = crate::customer::profile::Profile::default();
            let pop = crate::population::Population::default();
            let view = View::new(spec, &pop, &empty, 0);
            let resolve = |name: &str| fields.iter().find(|(n, _)| n == name).map(|(_, f)| *f);
            let fast = fast::compile(
                program.expression(),
                &fast::Fields {
                    resolve: &resolve,
                    sample: &view,
                },
            );
            let rule = SegmentSpec {
                name: c.name.as_str().into(),
                version: c.version,
                rule: c.rule.clone(),
                min_dwell,
                cooldown,
                sources,
                program,
                fields,
                fast,
            };
            if let Err(e) = interpret(&env, &rule, &view) {
                fail(format!("rule fails on an empty profile: {e}"));
                continue;
            }
            rules.push(rule);
        }
        if errors.is_empty() {
            Ok(Self { env, rules })
        } else {
            Err(errors)
        }
    }

    /// Whether the customer in `view` matches rule `i`.
    pub fn matches(&self, i: usize, view: &View<'_>) -> Result<bool, String> {
        let rule = &self.rules[i];
        match &rule.fast {
            Some(node) => node
                .matches(view)
                .map_err(|_| "overflow or division by zero".to_owned()),
            None => interpret(&self.env, rule, view),
        }
    }

    /// Rule `i` on the CEL interpreter, whatever its compiled form.
    #[cfg(test)]
    pub fn interpret(&self, i: usize, view: &View<'_>) -> Result<bool, String> {
        interpret(&self.env, &self.rules[i], view)
    }

    /// Whether rule `i` runs compiled rather than on the interpreter.
    #[cfg(test)]
    pub fn is_compiled(&self, i: usize) -> bool {
        self.rules[i].fast.is_some()
    }
}

/// Resolves a rule's fields for one customer, on demand.
struct Resolver<'a> {
    fields: &'a [(String, Field)],
    view: &'a View<'a>,
}

impl VariableResolver for Resolver<'_> {
    fn resolve<'b>(&'b self, name: &str) -> Option<CowVal<'b, 'b>> {
        let (_, f) = self.fields.iter().find(|(n, _)| n == name)?;
        Some(match f.value(self.view) {
            FieldValue::Int(v) => CowVal::owned(CelInt::from(v)),
            FieldValue::Float(v) => CowVal::owned(CelDouble::from(v)),
            FieldValue::Str(v) => CowVal::owned(CelString::from(v)),
            FieldValue::Bool(v) => CowVal::owned(CelBool::from(v)),
        })
    }
}

fn interpret(env: &Arc<Env>, rule: &SegmentSpec, view: &View<'_>) -> Result<bool, String> {
    let resolver = Resolver {
        fields: &rule.fields,
        view,
    };
    let mut ctx = Context::with_env(env.clone());
    ctx.set_variable_resolver(&resolver);
    match rule.program.execute(&ctx) {
        Ok(Value::Bool(b)) => Ok(b),
        Ok(other) => Err(format!("yields {other:?}, not a bool")),
        Err(e) => Err(e.to_string()),
    }
}

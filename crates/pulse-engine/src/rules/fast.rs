//! A compiled form of the common segment rules: comparisons, arithmetic, `&&`, `||`, `!`,
//! `? :` and `in` over a list of literals, on the profile's typed fields. It evaluates a rule in
//! tens of nanoseconds, where the general CEL interpreter builds a context and resolves every
//! name by string. Rules using anything else (functions, macros, maps) run on the interpreter.
//!
//! Types are checked when compiling: every field has a static type, so a rule is compiled only
//! if each operation is one CEL defines for its operand types, and it then agrees with the
//! interpreter (a property test compares the two on random profiles).

use crate::read::fields::{Field, FieldValue};
use crate::read::view::View;
use cel::common::ast::{operators as op, Expr, IdedExpr, LiteralValue};
use std::cmp::Ordering;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ty {
    Int,
    Float,
    Str,
    Bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cmp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Arith {
    Add,
    Sub,
    Mul,
    Div,
    Rem,
}

/// A compiled expression.
#[derive(Debug, Clone)]
pub(crate) enum Node {
    Field(Field),
    Int(i64),
    Float(f64),
    Str(String),
    Bool(bool),
    Not(Box<Node>),
    Neg(Box<Node>),
    And(Box<Node>, Box<Node>),
    Or(Box<Node>, Box<Node>),
    Cmp(Cmp, Box<Node>, Box<Node>),
    Arith(Arith, Box<Node>, Box<Node>),
    Cond(Box<Node>, Box<Node>, Box<Node>),
    In(Box<Node>, Vec<Node>),
}

/// A value during evaluation.
#[derive(Debug, Clone, Copy, PartialEq)]
enum V<'a> {
    I(i64),
    F(f64),
    S(&'a str),
    B(bool),
}

/// A run-time error (overflow, division by zero): the rule does not match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EvalError;

fn qualified(e: &IdedExpr) -> Option<String> {
    match &e.expr {
        Expr::Ident(n) => Some(n.clone()),
        Expr::Select(s) if !s.test => Some(format!("{}.{}", qualified(&s.operand)?, s.field)),
        _ => None,
    }
}

/// Names resolved to fields, and a view to read their types from.
pub(crate) struct Fields<'a> {
    pub resolve: &'a dyn Fn(&str) -> Option<Field>,
    pub sample: &'a View<'a>,
}

/// Compiles `e` with its type, or None if it uses anything outside the supported subset.
pub(crate) fn compile(e: &IdedExpr, field: &Fields<'_>) -> Option<Node> {
    let (node, ty) = build(e, field)?;
    (ty == Ty::Bool).then_some(node)
}

/// The type of a field: every field has one whatever the profile, so a sample value tells it.
fn field_type(f: Field, sample: &View<'_>) -> Ty {
    match f.value(sample) {
        FieldValue::Int(_) => Ty::Int,
        FieldValue::Float(_) => Ty::Float,
        FieldValue::Str(_) => Ty::Str,
        FieldValue::Bool(_) => Ty::Bool,
    }
}

fn numeric(t: Ty) -> bool {
    matches!(t, Ty::Int | Ty::Float)
}

fn build(e: &IdedExpr, field: &Fields<'_>) -> Option<(Node, Ty)> {
    if let Expr::Call(c) = &e.expr {
        if c.func_name == op::IN {
            return build_in(e, field);
        }
    }
    if let Some(name) = qualified(e) {
        let f = (field.resolve)(&name)?;
        return Some((Node::Field(f), field_type(f, field.sample)));
    }
    match &e.expr {
        Expr::Literal(l) => match l {
            LiteralValue::Int(i) => Some((Node::Int(**i), Ty::Int)),
            LiteralValue::Double(d) => Some((Node::Float(**d), Ty::Float)),
            LiteralValue::Boolean(b) => Some((Node::Bool(**b), Ty::Bool)),
            LiteralValue::String(s) => Some((Node::Str(s.to_string()), Ty::Str)),
            _ => None,
        },
        Expr::Call(c) if c.target.is_none() => {
            let arg = |i: usize| build(c.args.get(i)?, field);
            let b = Box::new;
            match (c.func_name.as_str(), c.args.len()) {
                (op::LOGICAL_NOT, 1) => {
                    let (a, t) = arg(0)?;
                    (t == Ty::Bool).then(|| (Node::Not(b(a)), Ty::Bool))
                }
                (op::NEGATE, 1) => {
                    let (a, t) = arg(0)?;
                    numeric(t).then(|| (Node::Neg(b(a)), t))
                }
                (op::LOGICAL_AND | op::LOGICAL_OR, 2) => {
                    let ((l, lt), (r, rt)) = (arg(0)?, arg(1)?);
                    if lt != Ty::Bool || rt != Ty::Bool {
                        return None;
                    }
                    let n = if c.func_name == op::LOGICAL_AND {
                        Node::And(b(l), b(r))
                    } else {
                        Node::Or(b(l), b(r))
                    };
                    Some((n, Ty::Bool))
                }
                (op::CONDITIONAL, 3) => {
                    let ((c0, ct), (t1, tt), (f1, ft)) = (arg(0)?, arg(1)?, arg(2)?);
                    (ct == Ty::Bool && tt == ft).then(|| (Node::Cond(b(c0), b(t1), b(f1)), tt))
                }
                (name, 2) => {
                    let ((l, lt), (r, rt)) = (arg(0)?, arg(1)?);
                    let cmp = match name {
                        op::EQUALS => Some(Cmp::Eq),
                        op::NOT_EQUALS => Some(Cmp::Ne),
                        op::LESS => Some(Cmp::Lt),
                        op::LESS_EQUALS => Some(Cmp::Le),
                        op::GREATER => Some(Cmp::Gt),
                        op::GREATER_EQUALS => Some(Cmp::Ge),
                        _ => None,
                    };
                    if let Some(cmp) = cmp {
                        // Numbers compare across int and double; other types only with their
                        // own.
                        let ok = (numeric(lt) && numeric(rt)) || lt == rt;
                        return ok.then(|| (Node::Cmp(cmp, b(l), b(r)), Ty::Bool));
                    }
                    let arith = match name {
                        op::ADD => Arith::Add,
                        op::SUBSTRACT => Arith::Sub,
                        op::MULTIPLY => Arith::Mul,
                        op::DIVIDE => Arith::Div,
                        op::MODULO if lt == Ty::Int => Arith::Rem,
                        _ => return None,
                    };
                    // CEL has no mixed int/double arithmetic.
                    (numeric(lt) && lt == rt).then(|| (Node::Arith(arith, b(l), b(r)), lt))
                }
                _ => None,
            }
        }
        _ => None,
    }
}

/// `x in [literal, …]` with literals of x's type.
fn build_in(e: &IdedExpr, field: &Fields<'_>) -> Option<(Node, Ty)> {
    let Expr::Call(c) = &e.expr else { return None };
    if c.func_name != op::IN || c.args.len() != 2 || c.target.is_some() {
        return None;
    }
    let (x, xt) = build(&c.args[0], field)?;
    let Expr::List(list) = &c.args[1].expr else {
        return None;
    };
    if !list.optional_indices.is_empty() {
        return None;
    }
    let mut items = Vec::new();
    for el in &list.elements {
        let (n, t) = build(el, field)?;
        if !matches!(
            n,
            Node::Int(_) | Node::Float(_) | Node::Str(_) | Node::Bool(_)
        ) || t != xt
        {
            return None;
        }
        items.push(n);
    }
    Some((Node::In(Box::new(x), items), Ty::Bool))
}

impl Node {
    /// The rule's result for the customer in `view`.
    pub(crate) fn matches(&self, view: &View<'_>) -> Result<bool, EvalError> {
        match self.eval(view)? {
            V::B(b) => Ok(b),
            _ => Err(EvalError),
        }
    }

    fn eval<'a>(&'a self, view: &View<'_>) -> Result<V<'a>, EvalError> {
        Ok(match self {
            Node::Field(f) => match f.value(view) {
                FieldValue::Int(i) => V::I(i),
                FieldValue::Float(x) => V::F(x),
                FieldValue::Str(s) => V::S(s),
                FieldValue::Bool(b) => V::B(b),
            },
            Node::Int(i) => V::I(*i),
            Node::Float(x) => V::F(*x),
            Node::Str(s) => V::S(s),
            Node::Bool(b) => V::B(*b),
            Node::Not(a) => V::B(!a.matches(view)?),
            Node::Neg(a) => match a.eval(view)? {
                V::I(i) => V::I(i.checked_neg().ok_or(EvalError)?),
                V::F(x) => V::F(-x),
                _ => return Err(EvalError),
            },
            // CEL's logical operators absorb an error when the other side decides.
            Node::And(l, r) => match (l.matches(view), r.matches(view)) {
                (Ok(false), _) | (_, Ok(false)) => V::B(false),
                (Ok(true), Ok(true)) => V::B(true),
                _ => return Err(EvalError),
            },
            Node::Or(l, r) => match (l.matches(view), r.matches(view)) {
                (Ok(true), _) | (_, Ok(true)) => V::B(true),
                (Ok(false), Ok(false)) => V::B(false),
                _ => return Err(EvalError),
            },
            Node::Cond(c, t, f) => {
                if c.matches(view)? {
                    t.eval(view)?
                } else {
                    f.eval(view)?
                }
            }
            Node::Cmp(c, l, r) => {
                let ord = compare(l.eval(view)?, r.eval(view)?);
                V::B(match c {
                    Cmp::Eq => ord == Some(Ordering::Equal),
                    Cmp::Ne => ord != Some(Ordering::Equal),
                    Cmp::Lt => ord == Some(Ordering::Less),
                    Cmp::Le => matches!(ord, Some(Ordering::Less | Ordering::Equal)),
                    Cmp::Gt => ord == Some(Ordering::Greater),
                    Cmp::Ge => matches!(ord, Some(Ordering::Greater | Ordering::Equal)),
                })
            }
            Node::Arith(a, l, r) => match (l.eval(view)?, r.eval(view)?) {
                (V::I(x), V::I(y)) => V::I(
                    match a {
                        Arith::Add => x.checked_add(y),
                        Arith::Sub => x.checked_sub(y),
                        Arith::Mul => x.checked_mul(y),
                        Arith::Div => x.checked_div(y),
                        Arith::Rem => x.checked_rem(y),
                    }
                    .ok_or(EvalError)?,
                ),
                (V::F(x), V::F(y)) => V::F(match a {
                    Arith::Add => x + y,
                    Arith::Sub => x - y,
                    Arith::Mul => x * y,
                    Arith::Div => x / y,
                    Arith::Rem => return Err(EvalError),
                }),
                _ => return Err(EvalError),
            },
            Node::In(x, items) => {
                let x = x.eval(view)?;
                let mut found = false;
                for i in items {
                    found |= compare(x, i.eval(view)?) == Some(Ordering::Equal);
                }
                V::B(found)
            }
        })
    }
}

/// Orders two values: numbers across int and double, strings and bools with their own kind.
fn compare(a: V<'_>, b: V<'_>) -> Option<Ordering> {
    match (a, b) {
        (V::I(x), V::I(y)) => Some(x.cmp(&y)),
        (V::F(x), V::F(y)) => x.partial_cmp(&y),
        (V::I(x), V::F(y)) => (x as f64).partial_cmp(&y),
        (V::F(x), V::I(y)) => x.partial_cmp(&(y as f64)),
        (V::S(x), V::S(y)) => Some(x.cmp(y)),
        (V::B(x), V::B(y)) => Some(x.cmp(&y)),
        _ => None,
    }
}

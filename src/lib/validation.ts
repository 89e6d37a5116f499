import type { TSchema } from '@sinclair/typebox';
import { Ajv, type ValidateFunction } from 'ajv';
import addFormats from 'ajv-formats';

/**
 * The one validator of the project's TypeBox schemas. JSON bodies must have the right types as sent
 * (no coercion, no silently dropped fields: an unknown field is an error). Query strings, path
 * parameters and command-line options are text, so they are coerced to the schema's types.
 */
function makeAjv(coerce: boolean): Ajv {
  const ajv = new Ajv({
    coerceTypes: coerce ? 'array' : false,
    useDefaults: true,
    removeAdditional: false,
    allErrors: false,
    strict: false,
  });
  (addFormats as unknown as (a: Ajv) => void)(ajv);
  return ajv;
}

const strictAjv = makeAjv(false);
const textAjv = makeAjv(true);

export function compileValidator(schema: object, fromText: boolean): ValidateFunction {
  return (fromText ? textAjv : strictAjv).compile(schema);
}

const compiled = new WeakMap<TSchema, ValidateFunction>();

function validatorOf(schema: TSchema): ValidateFunction {
  let validate = compiled.get(schema);
  if (!validate) {
    validate = strictAjv.compile(schema);
    compiled.set(schema, validate);
  }
  return validate;
}

/** Why `value` does not fit `schema`, or undefined when it does. Fills in the schema's defaults. */
export function schemaProblem(schema: TSchema, value: unknown): string | undefined {
  return schemaIssue(schema, value)?.message;
}

/** Like `schemaProblem`, with where in `value` the problem is (`a.b.0`, '' for the value itself). */
export function schemaIssue(schema: TSchema, value: unknown): { path: string; message: string } | undefined {
  const validate = validatorOf(schema);
  if (validate(value)) return undefined;
  const first = validate.errors?.[0];
  const path = (first?.instancePath ?? '').replace(/^\//, '').replaceAll('/', '.');
  return { path, message: first?.message ?? 'is invalid' };
}

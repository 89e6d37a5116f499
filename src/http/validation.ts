import type { FastifySchemaCompiler } from 'fastify';
import { compileValidator } from '../lib/validation.ts';

/** Bodies are validated strictly; query strings and path parameters are text and coerced. */
export const validatorCompiler: FastifySchemaCompiler<unknown> = ({ schema, httpPart }) =>
  compileValidator(schema as object, httpPart !== 'body');

import { InitialSchema1763900000000 } from './1763900000000-initial-schema';

/**
 * Every migration, oldest first. Imported as classes (not a file glob) so the same list works under tsx,
 * compiled JS and a bundle.
 */
export const MIGRATIONS = [InitialSchema1763900000000];

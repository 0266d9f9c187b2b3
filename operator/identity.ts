/**
 * How this operator signs what it writes, for every controller alike: the server-side-apply
 * field manager, and the labels that mark an object as ours. The runtime watches owned kinds
 * through MANAGED_SELECTOR; a controller's own names and labels live beside its builders.
 */

/** The field manager of every server-side apply (children and /status). */
export const FIELD_MANAGER = 'pushgate-operator';

export const LABEL_NAME = 'app.kubernetes.io/name';
export const LABEL_INSTANCE = 'app.kubernetes.io/instance';
export const LABEL_COMPONENT = 'app.kubernetes.io/component';
export const LABEL_MANAGED_BY = 'app.kubernetes.io/managed-by';
export const LABEL_PART_OF = 'app.kubernetes.io/part-of';

/** The value of LABEL_MANAGED_BY on everything the operator creates. */
export const MANAGED_BY = 'pushgate-operator';

/** Every child the operator manages carries this label; owned-kind informers select on it. */
export const MANAGED_SELECTOR = `${LABEL_MANAGED_BY}=${MANAGED_BY}`;

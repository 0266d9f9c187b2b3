import { GROUP, TAG_CAMPAIGN, VERSION } from '../../api/index.js';
import type { ResourceType } from '../../runtime/kube.js';

/** Where TagCampaigns live in the API. */
export const TagCampaignResource: ResourceType = {
  group: GROUP,
  version: VERSION,
  kind: TAG_CAMPAIGN.kind,
  plural: TAG_CAMPAIGN.plural,
  namespaced: true,
};

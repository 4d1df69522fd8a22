"""COCO metric with the standard COCO summary: maxDets (1, 10, 100) and all twelve numbers."""
from __future__ import annotations

from typing import Sequence

from mmdet.evaluation.metrics import CocoMetric
from mmdet.registry import METRICS

AP_ITEMS = ('mAP', 'mAP_50', 'mAP_75', 'mAP_s', 'mAP_m', 'mAP_l')
# mmdet names COCOeval.stats[6:12] after its default maxDets (100, 300, 1000); these are
# those indices, renamed below after the maxDets actually used.
_MMDET_AR_ITEMS = ('AR@100', 'AR@300', 'AR@1000', 'AR_s@1000', 'AR_m@1000', 'AR_l@1000')


@METRICS.register_module()
class CocoDetMetric(CocoMetric):
    """mmdet's ``CocoMetric`` evaluated exactly as cocoapi's summary prints it.

    mmdet evaluates boxes with maxDets (100, 300, 1000), which makes "AP" the AP at 1000
    detections per image and labels the AR lines by index. COCO's standard summary is
    maxDets (1, 10, 100); with it AP equals the published definition and the results carry
    ``bbox_AR@1``, ``bbox_AR@10``, ``bbox_AR@100``, ``bbox_AR_s@100`` ... under honest names,
    next to mmdet's usual ``bbox_mAP``, ``bbox_mAP_50`` ...

    Only the images that were evaluated count: mmdet scores every image of the annotation
    file, so a subset (``test_dataloader.dataset.indices=20``) would be charged with missed
    detections on all the images it skipped.
    """

    def __init__(self, proposal_nums: Sequence[int] = (1, 10, 100), **kwargs) -> None:
        if len(proposal_nums) != 3:
            raise ValueError('CocoDetMetric needs exactly three proposal_nums (maxDets)')
        kwargs.setdefault('metric_items', list(AP_ITEMS + _MMDET_AR_ITEMS))
        super().__init__(proposal_nums=proposal_nums, **kwargs)
        n1, n2, n3 = self.proposal_nums
        self._ar_names = dict(zip(_MMDET_AR_ITEMS, (f'AR@{n1}', f'AR@{n2}', f'AR@{n3}',
                                                    f'AR_s@{n3}', f'AR_m@{n3}', f'AR_l@{n3}')))

    def compute_metrics(self, results: list) -> dict:
        self.img_ids = sorted({pred['img_id'] for _, pred in results})
        out = {}
        for key, value in super().compute_metrics(results).items():
            metric, _, item = key.partition('_')
            out[f'{metric}_{self._ar_names[item]}' if item in self._ar_names else key] = value
        return out

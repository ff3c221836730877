"""PyConvResNet and PyConvHGResNet (Duta et al., arXiv 2006.11538), as OpenMMLab backbones.

The architecture is the paper's, not ResNet's: a 7x7/2 stem without max-pool; every stage's
first block is strided on its PyConv; a projection shortcut is max-pool 3x3 -> 1x1 conv -> norm.
Stage plans (kernels / groups per pyramid level):

* PyConvResNet: [3,5,7,9]/[1,4,8,16], [3,5,7]/[1,4,8], [3,5]/[1,4], [3]/[1]; bottleneck expansion
  4 (depth 50/101/152) or the basic block "PyConv then 1x1 conv", expansion 1 (depth 18/34).
* PyConvHGResNet: widths doubled, expansion 2, groups [32]*4, [32,64,64], [32,64], [32].

Module names follow the original networks (``conv1``, ``bn1``, ``layer{1-4}.{j}.conv{1-3}``,
``downsample.{0,1,2}``), so their checkpoints map onto these modules level by level.
"""
import math
import re
import warnings
from typing import Dict, List, Optional, Sequence, Tuple, Type, Union

import torch
import torch.nn as nn
from mmcv.cnn import build_activation_layer, build_conv_layer, build_norm_layer
from mmengine.model import BaseModule
from mmengine.model.weight_init import constant_init
from mmengine.registry import MODELS
from torch.nn.modules.batchnorm import _BatchNorm

from .original_layout import original_layout_pre_hook
from .pretrained import PRETRAINED_TYPES, check_fit, model_zoo_reason
from .pyconv_blocks import PyConvBasicBlock, PyConvBottleneck, _PyConvBlock

__all__ = ['PyConvResNet', 'PyConvHGResNet']

ConfigType = Dict
Plan = Sequence[Sequence[int]]


def _refused_resnet_argument(name: str, style: str, deep_stem: bool, avg_down: bool,
                             dcn: Optional[ConfigType],
                             stage_with_dcn: Sequence[bool]) -> Optional[str]:
    """Why a ResNet argument copied from a ResNet config has no meaning here, in one line that
    says what the PyConv network does instead; None when the value is the one it already has."""
    if style != 'pytorch':
        return (f"style={style!r}: {name} has one layout, the stride on each stage's first "
                "PyConv (what ResNet calls style='pytorch'); drop style")
    if deep_stem:
        return (f"deep_stem=True: {name}'s stem is the paper's single 7x7/2 conv without "
                'max-pool, which its pretrained weights have; drop deep_stem')
    if avg_down:
        return (f"avg_down=True: {name}'s projection shortcut already downsamples by pooling "
                '(max-pool 3x3 -> 1x1 conv -> norm, the paper\'s); drop avg_down')
    if dcn is not None or any(stage_with_dcn):
        return (f'dcn: {name} has no deformable convs (its PyConv levels are grouped convs of '
                'sizes 3 to 9); drop dcn and stage_with_dcn')
    return None


@MODELS.register_module()
class PyConvResNet(BaseModule):
    """PyConvResNet backbone (Duta et al., "Pyramidal Convolution", arXiv 2006.11538).

    Args:
        depth (int): 18, 34, 50, 101 or 152.
        in_channels (int): Input image channels. Default: 3.
        stem_channels (int): Output channels of the 7x7/2 stem. Default: 64.
        base_channels (int, optional): Middle width of the first stage (doubled per stage).
            Default: None, the family's (64; 128 for PyConvHGResNet).
        expansion (int, optional): Block expansion. Default: None, the family's (basic block 1,
            bottleneck 4; PyConvHGResNet 2).
        num_stages (int): Stages to build, 1 to 4. Default: 4.
        strides (Sequence[int]): Stride of each stage's first PyConv. Default: (2, 2, 2, 2).
        dilations (Sequence[int]): Dilation of each stage's PyConvs. Default: (1, 1, 1, 1).
            A stage with stride > 1 or dilation > 1 keeps the max-pool (with the stage's stride)
            in its projection shortcut, as the original segmentation network does when it trades
            stride for dilation.
        out_indices (Sequence[int]): Stages whose outputs are returned. Default: (3, ).
        pyconv_kernels (Sequence[Sequence[int]], optional): Kernel of each pyramid level, per
            stage. Default: None, the family's plan.
        pyconv_groups (Sequence[Sequence[int]], optional): Groups of each pyramid level, per
            stage. Default: None, the family's plan.
        pyconv_cfg (dict): Config of the PyConv layers. Default: ``dict(type='PyConv2d')``.
        frozen_stages (int): Stages to freeze (stop grad, eval mode); 0 freezes the stem only,
            -1 nothing. Default: -1.
        conv_cfg (dict, optional): Config of the non-PyConv convs. Default: None (Conv2d).
        norm_cfg (dict): Norm config. Default: ``dict(type='BN', requires_grad=True)``.
        act_cfg (dict): Activation config. Default: ``dict(type='ReLU', inplace=True)``.
        norm_eval (bool): Keep norm layers in eval mode while training (freezes running
            stats). Default: False.
        with_cp (bool): Use gradient checkpointing in every block. Default: False.
        zero_init_residual (bool): Zero-initialise the last norm of every block, so each starts
            as identity. Default: False (the original's default).
        pretrained (str, optional): Deprecated, use ``init_cfg=dict(type='Pretrained',
            checkpoint=...)``. Accepted because mmseg's EncoderDecoder passes it.
        init_cfg (dict | list[dict], optional): Initialization config. Default: Kaiming normal
            (fan_out) for convs, 1/0 for norms, as the original. A checkpoint in the authors'
            layout loads as it is through ``dict(type='Pretrained', checkpoint=...)``.

    Attributes:
        stage_channels (list[int]): Output width of every stage.
        feat_dim (int): Output width of the last stage (what a classifier head takes), as
            mmpretrain's ResNet has it.

    Example:
        >>> import torch
        >>> m = PyConvResNet(depth=50, out_indices=(0, 1, 2, 3))
        >>> for out in m(torch.rand(1, 3, 224, 224)):
        ...     print(tuple(out.shape))
        (1, 256, 56, 56)
        (1, 512, 28, 28)
        (1, 1024, 14, 14)
        (1, 2048, 7, 7)
    """

    arch_settings: Dict[int, Tuple[Type[_PyConvBlock], Tuple[int, ...]]] = {
        18: (PyConvBasicBlock, (2, 2, 2, 2)),
        34: (PyConvBasicBlock, (3, 4, 6, 3)),
        50: (PyConvBottleneck, (3, 4, 6, 3)),
        101: (PyConvBottleneck, (3, 4, 23, 3)),
        152: (PyConvBottleneck, (3, 8, 36, 3)),
    }
    default_base_channels = 64
    default_expansion: Optional[int] = None
    default_pyconv_kernels: Plan = ((3, 5, 7, 9), (3, 5, 7), (3, 5), (3, ))
    default_pyconv_groups: Plan = ((1, 4, 8, 16), (1, 4, 8), (1, 4), (1, ))
    # One output as a tensor rather than a 1-tuple: mmaction2's convention (its TSN and I3D
    # heads take a tensor), which the class registered in mmaction2's registry follows (see
    # toolboxes.py); a tuple elsewhere.
    single_output_as_tensor = False
    # The conv class the default init_cfg initialises (Kaiming, fan_out), by registry name.
    conv_layer = 'Conv2d'

    def __init__(self,
                 depth: int,
                 in_channels: int = 3,
                 stem_channels: int = 64,
                 base_channels: Optional[int] = None,
                 expansion: Optional[int] = None,
                 num_stages: int = 4,
                 strides: Sequence[int] = (2, 2, 2, 2),
                 dilations: Sequence[int] = (1, 1, 1, 1),
                 out_indices: Sequence[int] = (3, ),
                 pyconv_kernels: Optional[Plan] = None,
                 pyconv_groups: Optional[Plan] = None,
                 pyconv_cfg: ConfigType = dict(type='PyConv2d'),
                 frozen_stages: int = -1,
                 conv_cfg: Optional[ConfigType] = None,
                 norm_cfg: ConfigType = dict(type='BN', requires_grad=True),
                 act_cfg: ConfigType = dict(type='ReLU', inplace=True),
                 norm_eval: bool = False,
                 with_cp: bool = False,
                 zero_init_residual: bool = False,
                 contract_dilation: bool = False,
                 multi_grid: Optional[Sequence[int]] = None,
                 plugins: Optional[List[ConfigType]] = None,
                 drop_path_rate: float = 0.0,
                 style: str = 'pytorch',
                 deep_stem: bool = False,
                 avg_down: bool = False,
                 dcn: Optional[ConfigType] = None,
                 stage_with_dcn: Sequence[bool] = (False, False, False, False),
                 pretrained: Optional[str] = None,
                 init_cfg: Optional[Union[ConfigType, List[ConfigType]]] = None):
        name = type(self).__name__
        reason = (_refused_resnet_argument(name, style, deep_stem, avg_down, dcn, stage_with_dcn)
                  or model_zoo_reason(pretrained, 'pretrained', name, depth))
        for cfg in init_cfg if isinstance(init_cfg, (list, tuple)) else [init_cfg]:
            if reason is None and isinstance(cfg, dict) and cfg.get('type') in PRETRAINED_TYPES:
                reason = model_zoo_reason(cfg.get('checkpoint'), 'init_cfg.checkpoint', name,
                                          depth)
        if reason:
            raise ValueError(reason)
        if pretrained is not None:
            if init_cfg is not None:
                raise ValueError('give the checkpoint either as init_cfg or as the deprecated '
                                 '`pretrained`, not both')
            warnings.warn('`pretrained` is deprecated, use init_cfg=dict(type="Pretrained", '
                          'checkpoint=...)', DeprecationWarning)
            init_cfg = dict(type='Pretrained', checkpoint=pretrained)
        if init_cfg is None:
            init_cfg = [
                dict(type='Kaiming', layer=[self.conv_layer], mode='fan_out', nonlinearity='relu',
                     distribution='normal'),
                dict(type='Constant', val=1, bias=0, layer=['_BatchNorm', 'GroupNorm'])
            ]
        super().__init__(init_cfg=init_cfg)
        # The authors' checkpoints (conv2.conv2_{i} levels...) load as they are, through
        # init_cfg=dict(type='Pretrained') or load_state_dict.
        self.register_load_state_dict_pre_hook(original_layout_pre_hook)

        if isinstance(depth, bool) or not isinstance(depth, int):
            raise TypeError(f'{name}: depth must be an int such as 50 (one of '
                            f'{sorted(self.arch_settings)}), not {depth!r}')
        if depth not in self.arch_settings:
            raise KeyError(f'invalid depth {depth} for {name}; valid depths: '
                           f'{sorted(self.arch_settings)}')
        if not 1 <= num_stages <= 4:
            raise ValueError(f'num_stages must be 1 to 4, got {num_stages}')
        if len(strides) != num_stages or len(dilations) != num_stages:
            raise ValueError(f'strides {tuple(strides)} and dilations {tuple(dilations)} need one '
                             f'entry per stage (num_stages={num_stages})')
        if num_stages and strides[0] == 1:
            same = (2, *strides[1:])
            raise ValueError(
                f'strides={tuple(strides)}: {name}\'s stem downsamples by 2 only (no max-pool), '
                'so its first stage strides by 2 where ResNet\'s does not; what ResNet does with '
                f'strides={tuple(strides)} is strides={same} here, i.e. strides={same} for '
                f'output stride {2 * math.prod(same)} (ResNet\'s (1, s2, s3, s4) is (2, s2, s3, '
                's4): d8 (2, 2, 1, 1), d16 (2, 2, 2, 1), the default (2, 2, 2, 2) for 32)')
        block, stage_blocks = self.arch_settings[depth]
        if plugins and block is not PyConvBottleneck:
            raise ValueError(f'plugins: the basic blocks of {name}-{depth} take none (as '
                             "ResNet's); use depth 50, 101 or 152")
        if multi_grid is not None and len(multi_grid) != stage_blocks[num_stages - 1]:
            raise ValueError(f'multi_grid={tuple(multi_grid)} needs one dilation per block of '
                             f'the last stage ({stage_blocks[num_stages - 1]})')
        out_indices = tuple(out_indices)
        for idx in out_indices:
            if not 0 <= idx < num_stages:
                raise ValueError(f'out_indices {out_indices} must lie in [0, {num_stages})')
        if not -1 <= frozen_stages <= num_stages:
            raise ValueError(f'frozen_stages must be -1 to {num_stages}, got {frozen_stages}')
        kernels = self.default_pyconv_kernels if pyconv_kernels is None else pyconv_kernels
        groups = self.default_pyconv_groups if pyconv_groups is None else pyconv_groups
        for what, plan in (('pyconv_kernels', kernels), ('pyconv_groups', groups)):
            if len(plan) < num_stages:
                raise ValueError(f'{what} has {len(plan)} stage entries, {num_stages} needed')

        self.depth = depth
        self.block = block
        self.stage_blocks = stage_blocks[:num_stages]
        self.expansion = expansion or self.default_expansion or self.block.default_expansion
        self.stem_channels = stem_channels
        self.base_channels = base_channels or self.default_base_channels
        self.num_stages = num_stages
        self.strides = tuple(strides)
        self.dilations = tuple(dilations)
        self.out_indices = out_indices
        self.pyconv_kernels = tuple(tuple(k) for k in kernels[:num_stages])
        self.pyconv_groups = tuple(tuple(g) for g in groups[:num_stages])
        self.frozen_stages = frozen_stages
        self.conv_cfg = conv_cfg
        self.norm_cfg = norm_cfg
        self.act_cfg = act_cfg
        self.norm_eval = norm_eval
        self.with_cp = with_cp
        self.zero_init_residual = zero_init_residual
        self.contract_dilation = contract_dilation
        self.multi_grid = None if multi_grid is None else tuple(multi_grid)
        self.plugins = plugins
        self.drop_path_rate = drop_path_rate

        self._make_stem_layer(in_channels, stem_channels)
        self.res_layers = []
        self.stage_channels = []
        channels = stem_channels
        # Stochastic depth grows linearly from 0 to drop_path_rate over the blocks.
        total = sum(self.stage_blocks)
        rates = [drop_path_rate * j / max(total - 1, 1) for j in range(total)]
        for i in range(num_stages):
            out_channels = self.base_channels * 2**i * self.expansion
            first = sum(self.stage_blocks[:i])
            res_layer = self.make_res_layer(
                in_channels=channels,
                out_channels=out_channels,
                num_blocks=self.stage_blocks[i],
                stride=self.strides[i],
                dilation=self.dilations[i],
                pyconv_kernels=self.pyconv_kernels[i],
                pyconv_groups=self.pyconv_groups[i],
                pyconv_cfg=pyconv_cfg,
                block_dilations=self._block_dilations(i),
                drop_path_rates=rates[first:first + self.stage_blocks[i]],
                plugins=self._stage_plugins(i))
            layer_name = f'layer{i + 1}'
            self.add_module(layer_name, res_layer)
            self.res_layers.append(layer_name)
            self.stage_channels.append(out_channels)
            channels = out_channels
        self.feat_dim = channels
        self._freeze_stages()

    @property
    def norm1(self) -> nn.Module:
        return getattr(self, self.norm1_name)

    def get_layer_depth(self, param_name: str, prefix: str = '') -> Tuple[int, int]:
        """Layer id of a parameter, and the number of layers, for layer-wise lr decay.

        mmpretrain's ``LearningRateDecayOptimWrapperConstructor`` asks this (through the
        classifier's ``get_layer_depth``) and scales the learning rate of layer ``i`` of ``n`` by
        ``decay ** (n - i - 1)``. The stem is layer 0; each stage counts one layer per run of as
        many blocks as the first stage has (so PyConvResNet-50's stages give 1, 2, 2, 1 layers,
        -101's 1, 2, 8, 1); parameters outside the backbone (the head) are the last layer.

        Args:
            param_name (str): Name of the parameter, including ``prefix``.
            prefix (str): What precedes the backbone's own names, e.g. ``'backbone.'``.

        Returns:
            tuple[int, int]: The layer id of the parameter and the number of layers.
        """
        chunk = self.stage_blocks[0]
        stage_layers = [math.ceil(blocks / chunk) for blocks in self.stage_blocks]
        num_layers = 1 + sum(stage_layers) + 1
        if not param_name.startswith(prefix):
            return num_layers - 1, num_layers
        match = re.match(r'layer(\d+)\.(\d+)\.', param_name[len(prefix):])
        if match is None:
            return 0, num_layers
        stage, block = int(match[1]) - 1, int(match[2])
        return 1 + sum(stage_layers[:stage]) + block // chunk, num_layers

    def _make_stem_layer(self, in_channels: int, stem_channels: int) -> None:
        self.conv1 = build_conv_layer(
            self.conv_cfg, in_channels, stem_channels, kernel_size=7, stride=2, padding=3,
            bias=False)
        self.norm1_name, norm1 = build_norm_layer(self.norm_cfg, stem_channels, postfix=1)
        self.add_module(self.norm1_name, norm1)
        self.relu = build_activation_layer(self.act_cfg)

    def _make_shortcut(self, in_channels: int, out_channels: int, stride: int,
                       dilation: int) -> Optional[nn.Sequential]:
        """Max-pool 3x3 (if strided or dilated) -> 1x1 conv -> norm (if widths differ)."""
        layers = []
        pool = self.shortcut_pool(stride, dilation)
        if pool is not None:
            layers.append(pool)
        if in_channels != out_channels:
            layers.append(
                build_conv_layer(self.conv_cfg, in_channels, out_channels, 1, bias=False))
            layers.append(build_norm_layer(self.norm_cfg, out_channels)[1])
        return nn.Sequential(*layers) if layers else None

    def shortcut_pool(self, stride: int, dilation: int) -> Optional[nn.Module]:
        """The max-pool 3x3 of a strided or dilated stage's shortcut."""
        if stride > 1 or dilation > 1:
            return nn.MaxPool2d(kernel_size=3, stride=stride, padding=1)
        return None

    def _block_dilations(self, stage: int) -> List[int]:
        """Dilation of each block of a stage: the stage's; its first block's halved with
        ``contract_dilation``; ``multi_grid``'s in the last stage (as mmseg's ResNet)."""
        dilation, blocks = self.dilations[stage], self.stage_blocks[stage]
        if self.multi_grid is not None and stage == self.num_stages - 1:
            return list(self.multi_grid)
        first = dilation // 2 if self.contract_dilation and dilation > 1 else dilation
        return [first] + [dilation] * (blocks - 1)

    def _stage_plugins(self, stage: int) -> Optional[List[ConfigType]]:
        """The plugins of one stage (mmdet's format: ``stages`` selects the stages)."""
        if not self.plugins:
            return None
        selected = []
        for plugin in self.plugins:
            plugin = dict(plugin)
            stages = plugin.pop('stages', None)
            if stages is not None and len(stages) != self.num_stages:
                raise ValueError(f'plugin stages={tuple(stages)} needs one entry per stage '
                                 f'(num_stages={self.num_stages})')
            if stages is None or stages[stage]:
                selected.append(plugin)
        return selected

    def make_res_layer(self, in_channels: int, out_channels: int, num_blocks: int, stride: int,
                       dilation: int, pyconv_kernels: Sequence[int],
                       pyconv_groups: Sequence[int], pyconv_cfg: ConfigType,
                       block_dilations: Optional[Sequence[int]] = None,
                       drop_path_rates: Optional[Sequence[float]] = None,
                       plugins: Optional[List[ConfigType]] = None) -> nn.Sequential:
        """One stage: the first block strided (with the shortcut projection), then the rest."""
        block_dilations = block_dilations or [dilation] * num_blocks
        drop_path_rates = drop_path_rates or [0.0] * num_blocks
        extra = {} if plugins is None else dict(plugins=plugins)
        blocks = []
        for j in range(num_blocks):
            blocks.append(
                self.block(**self.block_args(
                    j,
                    dict(in_channels=in_channels if j == 0 else out_channels,
                         out_channels=out_channels,
                         expansion=self.expansion,
                         stride=stride if j == 0 else 1,
                         dilation=block_dilations[j],
                         pyconv_kernels=pyconv_kernels,
                         pyconv_groups=pyconv_groups,
                         downsample=self._make_shortcut(in_channels, out_channels, stride,
                                                        dilation) if j == 0 else None,
                         with_cp=self.with_cp,
                         drop_path_rate=drop_path_rates[j],
                         pyconv_cfg=pyconv_cfg,
                         conv_cfg=self.conv_cfg,
                         norm_cfg=self.norm_cfg,
                         act_cfg=self.act_cfg,
                         **extra))))
        return nn.Sequential(*blocks)

    def block_args(self, index: int, args: ConfigType) -> ConfigType:
        """The arguments of block ``index`` of the stage being built (the video backbones turn
        them into 3D ones); ``len(self.res_layers)`` is that stage's index."""
        return args

    def _freeze_stages(self) -> None:
        frozen = []
        if self.frozen_stages >= 0:
            frozen += [self.conv1, self.norm1]
        frozen += [getattr(self, f'layer{i}') for i in range(1, self.frozen_stages + 1)]
        for module in frozen:
            module.eval()
            for param in module.parameters():
                param.requires_grad = False

    def pretrained_checkpoint(self) -> Optional[Tuple[str, Optional[str]]]:
        """``(checkpoint, prefix)`` that ``init_weights`` will load, if any."""
        cfgs = self.init_cfg if isinstance(self.init_cfg, (list, tuple)) else [self.init_cfg]
        for cfg in cfgs:
            if isinstance(cfg, dict) and cfg.get('type') in PRETRAINED_TYPES:
                return cfg.get('checkpoint'), cfg.get('prefix')
        return None

    def check_pretrained(self) -> None:
        """Refuse a pretrained checkpoint of another network before it loads (see
        :mod:`mmpyconv.models.backbones.pretrained`); the tools' preflight calls it too."""
        found = self.pretrained_checkpoint()
        if found is not None and found[0]:
            check_fit(self, *found, depth=self.depth)

    def init_weights(self) -> None:
        if not self.is_init:
            self.check_pretrained()
        super().init_weights()
        if self.pretrained_checkpoint() is not None:
            return
        if self.zero_init_residual:
            for module in self.modules():
                if isinstance(module, _PyConvBlock):
                    constant_init(module.last_norm, 0)

    def forward(self, x: torch.Tensor) -> Union[torch.Tensor, Tuple[torch.Tensor, ...]]:
        if x.dim() == self.conv1.weight.dim() - 1:
            axes = '(N, C, H, W)' if x.dim() == 3 else '(N, C, T, H, W)'
            raise ValueError(f'{type(self).__name__} takes a batch shaped {axes}, got one sample '
                             f'of shape {tuple(x.shape)}: add the batch axis, x.unsqueeze(0)')
        x = self.relu(self.norm1(self.conv1(x)))
        outs = []
        for i, layer_name in enumerate(self.res_layers):
            x = getattr(self, layer_name)(x)
            if i in self.out_indices:
                outs.append(x)
        return self.outputs(outs)

    def outputs(self, outs: List[torch.Tensor]) -> Union[torch.Tensor, Tuple[torch.Tensor, ...]]:
        """The stage outputs as this toolbox's heads take them: a tuple (mmpretrain, mmdet and
        mmseg necks and heads index it), or one tensor where ``single_output_as_tensor`` says
        so and there is one output (mmaction2's heads, as its ResNets return)."""
        if self.single_output_as_tensor and len(outs) == 1:
            return outs[0]
        return tuple(outs)

    def train(self, mode: bool = True) -> 'PyConvResNet':
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for module in self.modules():
                if isinstance(module, _BatchNorm):
                    module.eval()
        return self


@MODELS.register_module()
class PyConvHGResNet(PyConvResNet):
    """PyConvHGResNet: PyConvResNet with doubled widths, expansion 2 and high grouping.

    Args: as :class:`PyConvResNet`; depth 50, 101 or 152.

    Example:
        >>> import torch
        >>> m = PyConvHGResNet(depth=50, out_indices=(3, ))
        >>> tuple(m(torch.rand(1, 3, 64, 64))[0].shape)
        (1, 2048, 2, 2)
    """
    arch_settings = {
        depth: setting
        for depth, setting in PyConvResNet.arch_settings.items() if setting[0] is PyConvBottleneck
    }
    default_base_channels = 128
    default_expansion = 2
    default_pyconv_groups = ((32, 32, 32, 32), (32, 64, 64), (32, 64), (32, ))

# The stronger recipe the PyConv authors published results for: batch 1024, lr 0.4, cosine
# decay over 300 epochs, mixed precision. Momentum and weight decay are not stated with it; they
# are kept from the default recipe (0.9, 1e-4).
optim_wrapper = dict(
    type='AmpOptimWrapper',
    loss_scale='dynamic',
    optimizer=dict(type='SGD', lr=0.4, momentum=0.9, weight_decay=1e-4))
param_scheduler = dict(
    type='CosineAnnealingLR', T_max=300, by_epoch=True, begin=0, end=300)
train_cfg = dict(by_epoch=True, max_epochs=300, val_interval=1)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=1024)

"""Transfer learning: reuse a trained network's layers for a new task (Analytics Zoo's ``Net``).

Load a trained model, look at its layers, keep them up to a feature layer, freeze the early
ones, add a new head, and fine-tune the result on the cluster with the Estimator::

    from workbench.nets import Net

    net = Net.load("quadrants.pt")         # a TorchScript or .keras file; a saved Estimator with model= or trust_code=True
    net.summary(example_batch)             # name, type, output shape, parameters, trainable flag
    base = net.cut(at="features").freeze(up_to="conv")
    model = base.append(torch.nn.Linear(16, 2)).model
    wb.Estimator.from_torch(model, loss="cross_entropy").fit((X, y), epochs=3)

Frozen parameters are not trainable, so they never travel to the parameter server.
"""

from workbench.nets.net import Net

__all__ = ["Net"]

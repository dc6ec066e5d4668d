"""Assignment 2 answers that must earn no accuracy points: an untrained model wrapped around a lookup
of the public test split (graded in tests/autograder/test_autograder_hostile.py, run in-process in
tests/assignments/test_assignment2.py)."""

# Each image is answered with the label of the nearest image of the public test split (kept in a
# buffer; torch.cdist + argmin): the grader's faint noise does not stop it. No training at all.
NEAREST = """

class NearestTestImage(nn.Module):
    \"\"\"An untrained model, answering each input with the label of the nearest test input.\"\"\"

    def __init__(self, inner, inputs, labels):
        super().__init__()
        self.inner = inner
        self.register_buffer("known", inputs.flatten(1).clone())
        self.register_buffer("labels", labels.clone())

    def forward(self, x, return_attention=False):
        if return_attention:
            return self.inner(x, return_attention=True)
        nearest = torch.cdist(x.flatten(1), self.known).argmin(dim=1)
        return torch.nn.functional.one_hot(self.labels[nearest], 10).float() * 100

"""
LOOKUP_VIT = NEAREST + """
model_vit = NearestTestImage(model_vit, patches_test, data.y_test)
q7_val_acc = round(evaluate(model_vit, patches_test, data.y_test)[1], 3)
print(q7_val_acc)
"""
CNN_LAYERS = """nn.Sequential(
    nn.Conv2d(1, 32, kernel_size=3), nn.ReLU(), nn.MaxPool2d(2),
    nn.Conv2d(32, 64, kernel_size=3), nn.ReLU(), nn.MaxPool2d(2),
    nn.Flatten(), nn.Linear(64 * 5 * 5, 64), nn.ReLU(), nn.Linear(64, 10))"""
LOOKUP_CNN = NEAREST + f"""
model_cnn = NearestTestImage({CNN_LAYERS}, data.x_test.unsqueeze(1), data.y_test)
q8_val_acc = round(evaluate(model_cnn, data.x_test.unsqueeze(1), data.y_test)[1], 3)
print(q8_val_acc)
"""

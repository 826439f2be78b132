"""A training script written for TensorBoard, in the shape of PyTorch's TensorBoard tutorial (``Loss/train`` and
``Loss/test`` scalars, weight histograms, an image of samples, ``add_hparams`` at the end).

Written for flexlogger's tests (no third-party script could be kept here; see tests/test_scripts.py). The tests run
a copy whose SummaryWriter import line is replaced, and nothing else.
"""

# ruff: noqa: N812 - written as users write training scripts (`import torch.nn.functional as F`)
import argparse

import torch
import torch.nn as nn
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch.utils.data import DataLoader, TensorDataset
from torch.utils.tensorboard import SummaryWriter


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--logdir", default="runs/digits")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--max-batches", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(0)

    digits = load_digits()
    x = torch.tensor(digits.data, dtype=torch.float32) / 16.0
    y = torch.tensor(digits.target)
    train_loader = DataLoader(TensorDataset(x[:1500], y[:1500]), batch_size=args.batch_size, shuffle=True)
    test_x, test_y = x[1500:], y[1500:]

    model = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr / 10)
    writer = SummaryWriter(args.logdir)
    writer.add_images("samples", digits.images[:8, None] / 16.0, 0)

    step = 0
    for epoch in range(args.epochs):
        running = 0.0
        for i, (inputs, labels) in enumerate(train_loader):
            optimizer.zero_grad()
            loss = F.cross_entropy(model(inputs), labels)
            loss.backward()
            optimizer.step()
            running += loss.item()
            writer.add_scalar("Loss/train", loss.item(), step)
            if i % 5 == 4:
                print(f"[{epoch + 1}, {i + 1:5d}] loss: {running / 5:.3f}")
                running = 0.0
            step += 1
            if args.max_batches and i + 1 >= args.max_batches:
                break
        with torch.no_grad():
            out = model(test_x)
            test_loss = F.cross_entropy(out, test_y).item()
            accuracy = (out.argmax(1) == test_y).float().mean().item()
        writer.add_scalar("Loss/test", test_loss, step)
        writer.add_scalar("Accuracy/test", accuracy, step)
        for name, param in model.named_parameters():
            writer.add_histogram(name, param, epoch)
        print(f"epoch {epoch + 1}: test loss {test_loss:.4f}, accuracy {accuracy:.4f}")

    writer.add_hparams({"lr": args.lr, "bsize": args.batch_size},
                       {"hparam/accuracy": accuracy, "hparam/loss": test_loss})
    writer.close()
    print("Finished Training")


if __name__ == "__main__":
    main()
